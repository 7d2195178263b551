"""Batches of two images of different original sizes through every architecture's exported tiny
model (``ppdet.export.Predictor``, Paddle Inference with oneDNN; ONNX Runtime where the
architecture converts): each image's detections equal its batch-of-one detections and the eager
model's, and masks come back in each image's own size.

Readers: YOLOv3 and SSD resize to a fixed 192x192 (as their configs do: no padding), so the two
images differ in ``scale_factor``. RetinaNet and the R-CNNs get a keep-ratio resize to [96, 128]
+ ``PadBatch(32)``, so ``im_shape``, ``scale_factor`` and the padding differ per image:

- A 120x160 -> 96x128 (scale 0.8, no padding), B 60x107 -> 72x128 (scale ~1.2, 24 rows of
  padding): both pad to 96x128 alone and together, so a batch [A, B] must give exactly what A
  and B give alone.
- C 90x70 -> 123x96, padded to 128x96 alone but to 128x128 beside A: a CNN's outputs near the
  padding depend on how much padding there is (a normalised zero row is not the conv's own zero
  border), for PaddleDetection as here, so [A, C] is compared with the eager model on the same
  batch only, and C's masks must be cropped to 90x70 out of the batch's 120x160.
"""

from __future__ import annotations

import importlib.util

import pytest

from ppdet.engine.predictor import Predictor as EagerPredictor
from ppdet.export import Predictor, export_model

from .conftest import TINY, assert_same_detections, photo, tiny_config, tiny_model

FIXED_SIZE = ("yolov3", "ssd")  # readers without padding
KEEP_RATIO = [
    "TestReader.sample_transforms.Resize.target_size=[96, 128]",
    "TestReader.sample_transforms.Resize.keep_ratio=true",
]
SIZES = {"A": (120, 160), "B": (60, 107), "C": (90, 70)}
HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))
ONNX_CONVERTS = ("yolov3", "ssd", "retinanet")


def batch_config(name: str) -> dict:
    extra = ["TestReader.batch_size=2"]
    if name not in FIXED_SIZE and name != "v01_faster_rcnn_fpn":  # v0.1: keep-ratio already
        extra += KEEP_RATIO
    return tiny_config(name, tuple(extra))


def renumbered(results: list[dict], start: int) -> list[dict]:
    """Results of a call on a slice of the images, with im_id as in the full list."""
    return [dict(r, im_id=r["im_id"] + start) for r in results]


def check_batches(predictor, images: dict, eager: list[dict]) -> None:
    """``predictor`` on [A, B, A, C] (batches [A, B] and [A, C]) equals the eager model on
    the same batches, and [A, B] equals A and B run alone."""
    a, b, c = images["A"], images["B"], images["C"]
    predictor.reset_timings()
    results = predictor([a, b, a, c])
    assert len(predictor.timings["inference"]) == 2  # two batches of two
    assert assert_same_detections(eager, results) >= 4
    assert assert_same_detections(results, eager) >= 4
    alone = [*predictor([a]), *renumbered(predictor([b]), 1)]
    assert assert_same_detections(alone, results[:2]) >= 2
    assert assert_same_detections(results[:2], alone) >= 2
    for result, key in zip(results, "ABAC"):
        if "mask" in result:
            assert result["mask"].shape == (len(result["bbox"]), *SIZES[key])


@pytest.mark.parametrize("name", list(TINY))
def test_batch_of_different_sizes_equals_batches_of_one_and_eager(name, tmp_path):
    cfg = batch_config(name)
    model = tiny_model(cfg)
    out = export_model(cfg, "", tmp_path / "model", model=model)
    images = {key: photo(h, w, seed) for seed, (key, (h, w)) in enumerate(SIZES.items())}
    eager, _ = EagerPredictor(cfg, "", model=model).predict([images[k] for k in "ABAC"])
    assert all(len(r["bbox"]) > 0 for r in eager)  # a real comparison

    predictor = Predictor(out, threads=1)
    assert predictor.preprocess.batch_size == 2
    batch, _ = next(iter(predictor.preprocess([images["A"], images["B"]])))
    if name not in FIXED_SIZE:  # the images of a batch differ in size and padding
        assert batch["im_shape"][0].tolist() != batch["im_shape"][1].tolist()
    assert batch["scale_factor"][0].tolist() != batch["scale_factor"][1].tolist()
    check_batches(predictor, images, eager)
    assert predictor.session.use_onednn  # no fallback

    if HAVE_ONNX and name in ONNX_CONVERTS:
        check_batches(Predictor(out, backend="onnx", threads=1), images, eager)
