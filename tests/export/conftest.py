"""Tiny configs of every architecture (random weights), images, and the detection matcher the
export tests share."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

import ppdet
from tests.conftest import ROOT

CONFIGS = Path(ROOT) / "configs"
RCNN = ["FPN.out_channel=16", "BBoxPostProcess.nms.score_threshold=0.0"]
# name -> (config, overrides that shrink it and keep detections of the untrained model)
TINY = {
    "yolov3": (
        "yolov3/yolov3_mobilenet_v1_demo.yml",
        ["MobileNet.scale=0.25", "YOLOv3FPN.base_channels=32", "YOLOv3Head.obj_prior=0.0"],
    ),
    "ssd": ("ssd/ssd_mobilenet_v1_demo.yml", ["MobileNet.scale=0.25"]),
    "retinanet": (
        "retinanet/retinanet_r18_fpn_demo.yml",
        ["FPN.out_channel=16", "RetinaHead.nms.score_threshold=0.0"],
    ),
    "faster_rcnn": ("faster_rcnn/faster_rcnn_r18_fpn_demo.yml", RCNN),
    "mask_rcnn": ("mask_rcnn/mask_rcnn_r18_fpn_demo.yml", [*RCNN, "MaskFeat.num_convs=1"]),
    "cascade_rcnn": ("cascade_rcnn/cascade_rcnn_r18_fpn_demo.yml", RCNN),
    "cascade_mask_rcnn": (
        "cascade_rcnn/cascade_mask_rcnn_r18_fpn_demo.yml",
        [*RCNN, "MaskFeat.num_convs=1"],
    ),
    # a legacy v0.1 config (fluid conventions: +1 box coder, unaligned RoIAlign), its
    # keep-ratio reader shrunk: an exported graph of free image size
    "v01_faster_rcnn_fpn": (
        "faster_rcnn_r50_fpn_1x.yml",
        [
            "ResNet.depth=18",
            *RCNN,
            "TwoFCHead.out_channel=32",
            "TestReader.sample_transforms.Resize.target_size=[96, 128]",
        ],
    ),
}
MIN_SCORE = 1e-6  # below this an untrained model's scores are exp() underflow noise, which
# oneDNN's softmax rounds differently (1e-28 vs 0: kept or not by a 0.0 score threshold)


def tiny_config(name: str, extra: tuple[str, ...] = ()) -> dict:
    config, overrides = TINY[name]
    return ppdet.load_config(str(CONFIGS / config), ["num_classes=3", *overrides, *extra])


def tiny_model(cfg: dict, seed: int = 0) -> paddle.nn.Layer:
    """The model of ``cfg`` with seeded random weights, in eval mode."""
    paddle.seed(seed)
    model = ppdet.build_model(cfg)
    model.eval()
    return model


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A BGR uint8 image with smooth shading and a few solid rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
    for _ in range(4):
        y, x = rng.integers(0, h - 16), rng.integers(0, w - 16)
        image[y : y + rng.integers(10, h // 2), x : x + rng.integers(10, w // 2)] = rng.integers(
            0, 255, 3
        )
    return image.astype(np.uint8)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> list[str]:
    """Two PNG files of different sizes."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (h, w) in enumerate([(120, 160), (90, 70)]):
        path = str(folder / f"photo{i}.png")
        cv2.imwrite(path, photo(h, w, i))
        paths.append(path)
    return paths


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [4] and b [M, 4] (x1y1x2y2) -> [M]."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def assert_same_detections(expected: list[dict], found: list[dict], top: int = 10) -> int:
    """Every one of the ``top`` best-scored detections (score >= MIN_SCORE) of each
    ``expected`` image has a partner in ``found`` (same image and class, IoU > 0.99 or the same
    coordinates within 0.01 px, |score diff| < 1e-4) and masks, if any, agree on > 99% of the pixels. Returns how many detections
    were compared."""
    assert [r["im_id"] for r in found] == [r["im_id"] for r in expected]
    compared = 0
    for want, got in zip(expected, found):
        assert want["bbox"].shape[1] == got["bbox"].shape[1] == 6
        order = np.argsort(-want["bbox"][:, 1], kind="stable")[:top]
        order = order[want["bbox"][order, 1] >= MIN_SCORE]
        for i in order:
            row = want["bbox"][i]
            ok = (got["bbox"][:, 0] == row[0]) & (np.abs(got["bbox"][:, 1] - row[1]) < 1e-4)
            ious = box_iou(row[2:], got["bbox"][:, 2:]) if len(got["bbox"]) else np.zeros(0)
            # a box clipped flat to a border (v0.1's +1 convention keeps it) has no IoU
            same_box = np.abs(got["bbox"][:, 2:] - row[2:]).max(axis=1, initial=0.0) < 1e-2
            ok &= (ious > 0.99) | same_box
            assert ok.any(), f"image {want['im_id']}: no partner for {row.tolist()}"
            if "mask" in want:
                j = int(np.flatnonzero(ok)[0])
                assert want["mask"][i].shape == got["mask"][j].shape
                assert (want["mask"][i] == got["mask"][j]).mean() > 0.99
            compared += 1
    return compared


def env_without_warnings() -> dict:
    return dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
