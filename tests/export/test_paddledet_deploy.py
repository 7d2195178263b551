"""infer_cfg.yml also carries PaddleDetection 2.6's deploy keys (ppdet/export/paddledet_deploy.py):
the operator mapping on hand-written readers, and a round trip: an exported tiny Mask R-CNN's
infer_cfg.yml read the way 2.6's deploy/python/infer.py reads it (its PredictConfig keys, its
preprocessing semantics, re-implemented below from its documented behaviour) gives the model
the same inputs as ppdet's Predictor, hence the same detections; ppdet's own reader still
reads the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from ppdet.export import Predictor, export_model
from ppdet.export.infer_cfg import read_infer_cfg
from ppdet.export.paddle_backend import PaddleSession
from ppdet.export.paddledet_deploy import deploy_keys, deploy_preprocess, family
from ppdet.export.pipeline import Preprocess, unpack_results

from .conftest import assert_same_detections, tiny_config, tiny_model

# 2.6 deploy/python/infer.py's SUPPORT_MODELS (those of ppdet's architectures' families)
SUPPORT_MODELS = ("YOLO", "RCNN", "SSD", "RetinaNet")
NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}


def test_operators_map_to_2_6_deploy_operators():
    reader = {
        "sample_transforms": [
            {"Decode": {}},
            {"Resize": {"target_size": 608, "keep_ratio": False, "interp": 2}},
            {"NormalizeImage": dict(NORM)},
            {"Permute": {}},
        ],
        "batch_transforms": [{"PadBatch": {"pad_to_stride": 32}}],
    }
    ops, problems = deploy_preprocess(reader)
    assert problems == []
    assert ops == [
        {"type": "Resize", "target_size": [608, 608], "keep_ratio": False, "interp": 2},
        {"type": "NormalizeImage", **NORM, "norm_type": "mean_std"},
        {"type": "Permute"},
        {"type": "PadStride", "stride": 32},
    ]
    square = {"sample_transforms": [{"Decode": {}}, {"NormalizeImage": dict(NORM)}, {
        "RandomScaledCrop": {"target_dim": 512, "scale_range": [1.0, 1.0], "interp": 1}},
        {"Permute": {}}]}  # fmt: skip
    ops, _ = deploy_preprocess(square)
    assert ops[1:3] == [
        {"type": "Resize", "target_size": [512, 512], "keep_ratio": True, "interp": 1},
        {"type": "Pad", "size": [512, 512], "fill_value": [0.0, 0.0, 0.0]},
    ]


@pytest.mark.parametrize(
    "op, reason",
    [
        ({"Permute": {"to_bgr": True}}, "Permute(to_bgr: true)"),
        ({"PILResize": {"target_size": [300, 300], "interp": 1}}, "PILResize (Pillow)"),
        ({"RandomScaledCrop": {"target_dim": 512, "scale_range": [0.1, 2.0]}}, "is random"),
        ({"RandomFlip": {}}, "RandomFlip has no 2.6 deploy operator"),
    ],
)
def test_an_operator_without_counterpart_leaves_preprocess_out(op, reason):
    reader = {"sample_transforms": [{"Decode": {}}, op]}
    ops, problems = deploy_preprocess(reader)
    assert ops is None and len(problems) == 1 and reason in problems[0]
    keys = deploy_keys("SSD", reader, ["bbox", "bbox_num"], "model.pdmodel")
    assert "Preprocess" not in keys and reason in keys["paddledet_deploy"]
    assert keys["paddledet_deploy"].startswith("not for PaddleDetection 2.6's deploy")


def test_architecture_families_follow_2_6():
    assert family("YOLOv3") == ("YOLO", 3)
    assert family("SSD") == ("SSD", 60)
    assert family("FasterRCNN") == family("MaskRCNN") == family("CascadeRCNN") == ("RCNN", 40)
    assert family("RetinaNet") == ("RetinaNet", 40)
    keys = deploy_keys("EfficientDet", {}, ["bbox", "bbox_num"], "model.pdmodel")
    assert (
        keys["arch"] == "EfficientDet" and "does not run EfficientDet" in keys["paddledet_deploy"]
    )
    assert family("DETR") is None


def paddledet26_inputs(preprocess: list[dict], images: list[str]) -> dict[str, np.ndarray]:
    """The inputs 2.6's deploy/python/infer.py makes for ``images`` from a ``Preprocess`` list:
    it decodes to RGB with OpenCV, runs the operators in order (Resize by fx/fy with the scale
    as scale_factor, NormalizeImage, Permute, PadStride, Pad) and zero-pads a batch to its
    largest image."""
    ims, shapes, scales = [], [], []
    for path in images:
        im = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        im_shape, scale = np.array(im.shape[:2], np.float32), np.ones(2, np.float32)
        for op in preprocess:
            kind = op["type"]
            if kind == "Resize":
                h, w = im.shape[:2]
                th, tw = op["target_size"]
                if op["keep_ratio"]:
                    s = min(th, tw) / min(h, w)
                    s = max(th, tw) / max(h, w) if round(s * max(h, w)) > max(th, tw) else s
                    sy = sx = s
                else:
                    sy, sx = th / h, tw / w
                im = cv2.resize(im, None, None, fx=sx, fy=sy, interpolation=op["interp"])
                im_shape, scale = np.array(im.shape[:2], np.float32), np.array([sy, sx], np.float32)
            elif kind == "NormalizeImage":
                im = im.astype(np.float32)
                im *= 1.0 / 255.0 if op["is_scale"] else 1.0
                if op["norm_type"] == "mean_std":
                    im -= np.array(op["mean"])[None, None]
                    im /= np.array(op["std"])[None, None]
            elif kind == "Permute":
                im = im.transpose(2, 0, 1).copy()
            elif kind == "PadStride":
                stride = op["stride"]
                if stride > 0:
                    c, h, w = im.shape
                    padded = np.zeros((c, -(-h // stride) * stride, -(-w // stride) * stride))
                    padded[:, :h, :w] = im
                    im = padded.astype(np.float32)
            else:
                raise AssertionError(f"operator {kind} not expected here")
        ims.append(im)
        shapes.append(im_shape)
        scales.append(scale)
    h, w = max(i.shape[1] for i in ims), max(i.shape[2] for i in ims)
    batch = np.zeros((len(ims), 3, h, w), np.float32)
    for b, im in enumerate(ims):
        batch[b, :, : im.shape[1], : im.shape[2]] = im
    return {"image": batch, "im_shape": np.stack(shapes), "scale_factor": np.stack(scales)}


def test_2_6_deploy_reads_the_export_and_feeds_the_same_inputs(photos, tmp_path):
    cfg = tiny_config("mask_rcnn", ("TestReader.batch_size=2",))
    out = export_model(cfg, "", tmp_path / "m", model=tiny_model(cfg), draw_threshold=0.4)
    conf = yaml.safe_load((out / "infer_cfg.yml").read_text())
    # what 2.6's PredictConfig and Detector read
    assert any(name in conf["arch"] for name in SUPPORT_MODELS) and conf["arch"] == "RCNN"
    assert conf["min_subgraph_size"] == 40 and conf["mode"] == "paddle"
    assert conf["mask"] is True and conf["use_dynamic_shape"] is False
    assert conf["label_list"] == ["class_0", "class_1", "class_2"]
    assert conf["draw_threshold"] == 0.4 and conf["metric"] == "COCO"
    assert [op["type"] for op in conf["Preprocess"]] == [
        "Resize", "NormalizeImage", "Permute", "PadStride",
    ]  # fmt: skip
    assert conf["paddledet_deploy"].startswith("PaddleDetection 2.6's deploy keys complete")

    # 2.6's preprocessing of the Preprocess list = ppdet's of the TestReader
    theirs = paddledet26_inputs(conf["Preprocess"], photos)
    batch, items = next(iter(Preprocess(cfg)(photos)))
    for key in ("im_shape", "scale_factor"):
        np.testing.assert_array_equal(theirs[key], batch[key])
    np.testing.assert_allclose(theirs["image"], batch["image"], atol=1e-5)

    # the model fed as 2.6 feeds it (by the predictor's input names; outputs bbox, bbox_num,
    # mask in that order) gives ppdet's Predictor's detections
    info = read_infer_cfg(out / "infer_cfg.yml")  # ppdet still reads the file
    session = PaddleSession(out / info.model_file, out / info.params_file, threads=1)
    outputs = dict(zip(["bbox", "bbox_num", "mask"], session.run(theirs)))
    assert outputs["bbox"].shape[1] == 6 and outputs["mask"].ndim == 3
    results = unpack_results(outputs, theirs, items)
    ours = Predictor(out, threads=1)(photos)
    assert assert_same_detections(ours, results) >= 2


def test_a_paddledetection_export_is_named_as_such(tmp_path):
    """ppdet's reader on a 2.6-written infer_cfg.yml (its keys only): one line saying so."""
    from ppdet.config.errors import ConfigError

    keys = deploy_keys("YOLOv3", {"sample_transforms": [{"Permute": {}}]}, ["bbox"], "m")
    path = tmp_path / "infer_cfg.yml"
    path.write_text(yaml.safe_dump({**keys, "label_list": ["a"], "use_dynamic_shape": False}))
    with pytest.raises(ConfigError, match="a PaddleDetection export .* re-export the weights"):
        read_infer_cfg(path)
