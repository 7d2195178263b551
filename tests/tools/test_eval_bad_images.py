"""tools/eval.py over a validation set with unreadable images: they are skipped with one warning
each, counted as images without detections, and the metrics are still written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import ppdet
from ppdet.engine.checkpoint import save_weights
from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides
from tests.data.image_kinds import png_bomb


def test_eval_skips_unreadable_images_and_still_scores(tiny_demo_data, tmp_path):
    data = tmp_path / "demo"
    shutil.copytree(tiny_demo_data, data)  # the session's copy stays intact
    val = data / "coco" / "val"
    names = sorted(os.listdir(val))
    (val / names[0]).write_bytes((val / names[0]).read_bytes()[:300])  # truncated JPEG
    (val / names[1]).write_bytes(png_bomb())
    opts = tiny_overrides(str(data), str(tmp_path / "out"))
    weights = save_weights(
        ppdet.build_model(ppdet.load_config(DEMO_CONFIG, opts)), str(tmp_path / "w")
    )
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "eval.py"), "-c", DEMO_CONFIG,
         "-o", *opts, f"weights={weights}", "--output_dir", str(tmp_path / "eval")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, proc.stderr
    assert any(f"{val / names[0]}: truncated JPEG" in w for w in warnings)
    assert any(f"{val / names[1]}: 900 megapixels" in w for w in warnings)
    assert warnings[-1].startswith("warning: eval: 2 of 4 images could not be read")
    assert "eval summary: AP@[.5:.95] = " in proc.stdout
    record = json.loads((tmp_path / "eval" / "eval_metrics.json").read_text())
    assert set(record["metrics"]) >= {"AP", "AP50"}
