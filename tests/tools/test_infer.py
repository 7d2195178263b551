"""tools/infer.py on a machine without any dataset, and over a folder of hostile and odd
images: a result for every readable image, one warning per unreadable one, exit status 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import ppdet
from ppdet.data.labels import COCO_CLASSES
from ppdet.engine.checkpoint import save_weights
from tests.conftest import ROOT
from tests.data.image_kinds import hostile_kinds, quadrants, write_hostile, write_odd

COCO_CONFIG = os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_270e_coco.yml")
SMALL = [  # the COCO model, narrowed so that it runs in a second on small inputs
    "MobileNet.scale=0.25",
    "YOLOv3FPN.base_channels=32",
    "YOLOv3Head.obj_prior=0.0",  # untrained: keep scores above the 0.005 threshold
    "TestReader.sample_transforms.Resize.target_size=[64, 64]",
]


@pytest.fixture(scope="module")
def coco_weights(tmp_path_factory) -> str:
    """Random weights of the narrowed 80-class COCO model (no label list with them)."""
    model = ppdet.build_model(ppdet.load_config(COCO_CONFIG, SMALL))
    return save_weights(model, str(tmp_path_factory.mktemp("weights") / "coco_tiny"))


def infer(cwd, weights: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "infer.py"), "-c", COCO_CONFIG,
         "-o", *SMALL, f"weights={weights}", "--draw_threshold", "0.0", *args],
        capture_output=True, text=True, cwd=str(cwd), timeout=300,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )  # fmt: skip


def test_coco_config_infers_a_photo_without_any_dataset(coco_weights, tmp_path):
    photo = tmp_path / "photo.jpg"  # a phone photo: stored sideways, EXIF says turn it
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(quadrants(96, 128), 1).copy()).save(photo, quality=95, exif=exif)
    assert not (tmp_path / "dataset").exists()  # cwd: dataset/coco/... is nowhere
    proc = infer(tmp_path, coco_weights, "--infer_img", str(photo), "--output_dir", "out")
    assert proc.returncode == 0, proc.stderr
    assert "class names: built-in COCO list" in proc.stderr
    assert "warning" not in proc.stderr and "1 images, " in proc.stdout
    (entry,) = json.loads((tmp_path / "out" / "bbox.json").read_text())
    assert entry["detections"] and all(d["category"] in COCO_CLASSES for d in entry["detections"])
    drawn = cv2.imread(str(tmp_path / "out" / "photo.jpg"))
    assert drawn.shape == (96, 128, 3)  # drawn on the upright image, like the boxes
    for det in entry["detections"]:
        x1, y1, x2, y2 = det["bbox"]
        assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 96


def test_a_folder_with_every_hostile_kind_gives_a_result_per_good_image(coco_weights, tmp_path):
    folder = tmp_path / "images"
    good = write_odd(str(folder))
    bad = write_hostile(str(folder))
    out = tmp_path / "out"
    proc = infer(
        tmp_path, coco_weights, "--infer_dir", str(folder), "--output_dir", str(out),
        "-o", "TestReader.batch_size=2",  # skipped images leave holes inside batches
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(bad), proc.stderr
    for name in bad:
        assert sum(os.path.join(str(folder), name) + ":" in w for w in warnings) == 1, name
    entries = json.loads((out / "bbox.json").read_text())
    assert sorted(os.path.basename(e["image"]) for e in entries) == sorted(good)
    assert all(e["detections"] for e in entries)
    assert f"{len(good)} images ({len(bad)} skipped: unreadable)" in proc.stdout
    written = sorted(os.listdir(out))
    assert written == sorted(
        ["bbox.json", *(n + ".png" if n.endswith(".gif") else n for n in good)]
    )
    for name, (expected, _) in good.items():
        drawn = cv2.imread(str(out / (name + ".png" if name.endswith(".gif") else name)))
        assert drawn.shape == expected.shape, name


def test_a_folder_without_any_readable_image_is_an_error(coco_weights, tmp_path):
    folder = tmp_path / "images"
    write_hostile(str(folder))
    proc = infer(tmp_path, coco_weights, "--infer_dir", str(folder))
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("warning", "error"))]
    assert proc.returncode == 1 and len(lines) == len(hostile_kinds()) + 1, proc.stderr
    assert (
        lines[-1]
        == f"error: none of the {len(hostile_kinds())} images could be read (see the warnings above)"
    )
