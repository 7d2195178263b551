"""Check that PaddleDetection 2.6 Cascade R-CNN weights give the same detections and losses here.

The approach of ``bench/compare_faster_rcnn.py``, whose reference script and input helpers this
reuses: the reference package (``paddledet==2.6.0`` in its own venv) builds its CascadeRCNN
from our ``configs/_base_/cascade_rcnn_r50_fpn.yml`` (2.x keys and values), fills every
parameter and BN statistic with random values, saves the ``.pdparams`` and records
``bbox``/``bbox_num`` on a fixed 2-image batch and the training losses on fixed ground truth
with deterministic sampling (``use_random: false``). We load the file strictly into our model
and compare the detections and all eight losses (RPN 2, three stages x 2, total).

    .venv/bin/python bench/compare_cascade_rcnn.py [--ref-python /tmp/refvenv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_faster_rcnn as frcnn  # noqa: E402  (also puts the repository on sys.path)

import paddle  # noqa: E402

import ppdet  # noqa: E402
from ppdet.zoo.weights import load_weights  # noqa: E402

REPO = frcnn.REPO
BASE = "cascade_rcnn_r50_fpn"
# (case name, background-logit bias shift on every stage: larger = fewer detections, scale of
# the stages' delta weights: small = refined boxes stay near their RoIs, so stage 2 (IoU 0.7)
# has foreground RoIs and a regression loss)
CASES = (
    ("r50_fpn", 0.0, 1.0),
    ("r50_fpn_sparse", 16.0, 1.0),
    ("r50_fpn_empty", 25.0, 1.0),
    ("r50_fpn_small_deltas", 0.0, 0.05),
)
LOSSES = ("loss", "loss_rpn_cls", "loss_rpn_reg") + tuple(
    f"loss_bbox_{kind}_stage{k}" for k in range(3) for kind in ("cls", "reg")
)

_SHIFT_LINE = 'if name == "bbox_head.bbox_score.bias":'
assert _SHIFT_LINE in frcnn.REFERENCE_SCRIPT, "compare_faster_rcnn.REFERENCE_SCRIPT changed"


def strip_reference(bbox: np.ndarray, bbox_num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop 2.x's fake row of an image without detections (score 0, box (0, 0, 1, 1) in input
    pixels, so (0, 0, 1 / w_scale, 1 / h_scale) after rescaling: real rows score >= the NMS
    threshold) and its class -1 rows (boxes empty after clipping)."""
    rows, start = [], 0
    for n in bbox_num.tolist():
        part = bbox[start : start + n]
        start += n
        fake = n == 1 and part[0, 1] == 0 and not part[0, 2:4].any()
        rows.append(part[:0] if fake else part[part[:, 0] >= 0])
    return np.concatenate(rows).reshape(-1, 6), np.array([len(r) for r in rows], "int32")


def reference_script(delta_scale: float) -> str:
    """The Faster R-CNN reference script with the background shift applied to every stage's
    score bias and the stages' delta weights scaled by ``delta_scale``."""
    return frcnn.REFERENCE_SCRIPT.replace(
        _SHIFT_LINE,
        f'if name.startswith("bbox_head.bbox_delta_stage"):\n'
        f"        value = value * {delta_scale!r}\n"
        '    if name.startswith("bbox_head.bbox_score_stage") and name.endswith(".bias"):',
    )


def compare(
    case: str, shift: float, delta_scale: float, ref_python: str, seed: int, work: Path) -> bool:
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "_base_" / f"{BASE}.yml", work / f"{BASE}.yml")
    inputs = frcnn.fixed_inputs(seed)
    np.savez(work / "inputs.npz", **inputs)
    (work / "reference_run.py").write_text(reference_script(delta_scale))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [ref_python, "reference_run.py", f"{BASE}.yml", ".", str(seed), str(shift)]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit(f"{case}: the reference script failed")
    print(f"[{case}]\n" + run.stdout.strip())
    ref = dict(np.load(work / "reference.npz"))
    ref_bbox, ref_num = strip_reference(ref["bbox"], ref["bbox_num"])

    overrides = [f"{k}={str(v).lower()}" for k, v in frcnn.DETERMINISTIC.items()]
    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{BASE}.yml"), overrides)
    model = ppdet.build_model(cfg)
    report = load_weights(model, str(work / "model.pdparams"), strict=True)
    ok = not report.missing and not report.unused
    batch = {k: paddle.to_tensor(inputs[k]) for k in ("image", "im_shape", "scale_factor")}
    model.eval()
    with paddle.no_grad():
        out = model(batch)
    bbox, bbox_num = out["bbox"].numpy(), out["bbox_num"].numpy()
    print(
        f"ours: bbox {bbox.shape}, bbox_num {bbox_num.tolist()} (reference without fake/-1 "
        f"rows: {ref_num.tolist()})"
    )
    if not np.array_equal(bbox_num, ref_num):
        print(f"{case}: DIFFERENT bbox_num\n")
        return False
    diff = np.abs(bbox - ref_bbox)  # [N, 6]
    print(
        f"  max |diff|: class {diff[:, 0].max(initial=0):.3g}, score "
        f"{diff[:, 1].max(initial=0):.3g}, box {diff[:, 2:].max(initial=0):.3g} px"
    )
    ok = ok and diff[:, 0].max(initial=0) == 0 and diff[:, 1].max(initial=0) < 1e-5
    ok = ok and diff[:, 2:].max(initial=0) < 1e-3

    model.train()
    losses = model({**batch, **frcnn.padded_gt(inputs)})
    ref_names = sorted(set(ref) - {"bbox", "bbox_num"})
    if sorted(losses) != ref_names or ref_names != sorted(LOSSES):
        print(f"{case}: DIFFERENT loss names: ours {sorted(losses)}, reference {ref_names}\n")
        return False
    parts = []
    for name in LOSSES:
        ours, theirs = float(losses[name]), float(ref[name])
        rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
        ok = ok and rel < 1e-4
        parts.append(f"{name} {ours:.5f} vs {theirs:.5f} (rel {rel:.1e})")
    print("  " + ";\n  ".join(parts))
    print(f"{case}: {'MATCH' if ok else 'DIFFERENT'}\n")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-python", default="/tmp/refvenv/bin/python")
    names = [c[0] for c in CASES]
    parser.add_argument("--cases", nargs="+", default=names, choices=names)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppdet_cascade_oracle_") as tmp:
        results = [
            compare(case, shift, scale, args.ref_python, args.seed, Path(tmp) / case)
            for case, shift, scale in CASES
            if case in args.cases
        ]
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
