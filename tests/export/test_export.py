"""Export of every architecture's tiny config (random weights): the exported model, run by
``ppdet.export.Predictor`` on Paddle Inference (oneDNN on), gives the eager model's detections
through the same preprocessing; ``infer_cfg.yml`` round-trips."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import yaml

from ppdet.engine.predictor import Predictor as EagerPredictor
from ppdet.export import Predictor, export_model
from ppdet.export.exporter import fixed_image_shape
from ppdet.export.infer_cfg import read_infer_cfg, reader_config, write_infer_cfg
from ppdet.export.pipeline import Preprocess

from .conftest import TINY, assert_same_detections, photo, tiny_config, tiny_model


@pytest.mark.parametrize("name", list(TINY))
def test_exported_model_equals_eager(name, photos, tmp_path):
    cfg = tiny_config(name)
    model = tiny_model(cfg)
    out = export_model(cfg, "", tmp_path / "model", model=model)
    info = read_infer_cfg(out / "infer_cfg.yml")
    assert info.architecture == cfg["architecture"]
    assert (out / info.model_file).is_file() and (out / info.params_file).is_file()
    assert info.outputs == (
        ["bbox", "bbox_num", "mask"] if "mask" in name else ["bbox", "bbox_num"]
    )
    assert not [p.name for p in tmp_path.iterdir() if p.name != "model"]  # no temp folder left

    images = [*photos, photo(100, 130, 7)]  # two files and an array (BGR)
    eager, _ = EagerPredictor(cfg, "", model=model).predict(images)
    predictor = Predictor(out, threads=1)
    exported = predictor(images)
    assert predictor.session.use_onednn  # ran with oneDNN, no fallback
    assert [r["im_file"] for r in exported] == [*photos, None]
    assert all(len(r["bbox"]) > 0 for r in eager)  # a real comparison
    assert assert_same_detections(eager, exported) >= 3  # at least one per image
    sizes = [(120, 160), (90, 70), (100, 130)]
    for result, (h, w) in zip(exported, sizes):
        if "rcnn" in name:  # R-CNNs clip to the original image (SSD/YOLO/RetinaNet do not)
            assert (result["bbox"][:, 2:] >= 0).all()
            assert (result["bbox"][:, [2, 4]] <= w).all() and (result["bbox"][:, [3, 5]] <= h).all()
        if "mask" in result:
            assert result["mask"].shape == (len(result["bbox"]), h, w)
    assert all(len(predictor.timings[s]) == 3 for s in ("preprocess", "inference", "postprocess"))


def test_fixed_and_free_image_shapes():
    assert fixed_image_shape(tiny_config("yolov3")["TestReader"]) == [3, 192, 192]
    reader = {
        "sample_transforms": [{"Resize": {"target_size": [100, 150], "keep_ratio": False}}],
        "batch_transforms": [{"PadBatch": {"pad_to_stride": 32}}],
    }
    assert fixed_image_shape(reader) == [3, 128, 160]
    assert fixed_image_shape(tiny_config("v01_faster_rcnn_fpn")["TestReader"]) == [3, -1, -1]
    assert fixed_image_shape({}) == [3, -1, -1]


def test_infer_cfg_round_trip(tmp_path, photos):
    cfg = tiny_config("mask_rcnn")
    out = export_model(cfg, "", tmp_path / "m", model=tiny_model(cfg), draw_threshold=0.3)
    info = read_infer_cfg(out / "infer_cfg.yml")
    assert info.draw_threshold == 0.3 and info.label_list == ["class_0", "class_1", "class_2"]
    assert info.image_shape == [3, 192, 192] and not info.use_dynamic_shape
    assert info.postprocess["bbox_post_process.nms"]["type"] == "MultiClassNMS"
    write_infer_cfg(info, tmp_path / "again.yml")
    assert read_infer_cfg(tmp_path / "again.yml") == info
    text = yaml.safe_load((out / "infer_cfg.yml").read_text())
    assert text["python_postprocess"] and text["python_postprocess"][0].startswith("mask:")
    # the exported reader makes the same model inputs as the config's
    ours = Preprocess(cfg)
    theirs = Preprocess(reader_config(info, out / "infer_cfg.yml"))
    for (a, items_a), (b, items_b) in zip(ours(photos), theirs(photos)):
        assert items_a == items_b
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_batch_of_two_images(photos, tmp_path):
    cfg = tiny_config("yolov3", ("TestReader.batch_size=2",))
    model = tiny_model(cfg)
    out = export_model(cfg, "", tmp_path / "m", model=model)
    predictor = Predictor(out, threads=1)
    assert predictor.preprocess.batch_size == 2
    exported = predictor([*photos, photos[0]])
    eager, _ = EagerPredictor(cfg, "", model=model).predict([*photos, photos[0]])
    assert len(predictor.timings["inference"]) == 2  # batches [2, 1]
    assert_same_detections(eager, exported)
    np.testing.assert_array_equal(exported[0]["bbox"], exported[2]["bbox"])


HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))


@pytest.mark.skipif(
    not HAVE_ONNX, reason='the onnx extra is not installed (pip install "ppdet[onnx]")'
)
def test_onnx_backend_through_the_predictor(photos, tmp_path):
    """backend="onnx" converts on first use and gives the Paddle backend's detections; an
    R-CNN says in one line that it does not convert."""
    from ppdet.errors import PpdetError

    cfg = tiny_config("ssd")
    out = export_model(cfg, "", tmp_path / "ssd", model=tiny_model(cfg))
    paddle_results = Predictor(out, threads=1)(photos)
    onnx_results = Predictor(out, backend="onnx", threads=1)(photos)
    assert (out / "model.onnx").is_file()
    assert assert_same_detections(paddle_results, onnx_results) > 0

    cfg = tiny_config("faster_rcnn")
    out = export_model(cfg, "", tmp_path / "rcnn", model=tiny_model(cfg))
    with pytest.raises(PpdetError) as err:
        Predictor(out, backend="onnx")
    assert len(str(err.value).splitlines()) == 1 and "generate_proposals" in str(err.value)
