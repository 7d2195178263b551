"""The ONNX backend (ppdet/export/onnx_backend.py): an exported tiny detector of every
architecture converts with paddle2onnx and gives the eager detections in onnxruntime (matched
IoU > 0.99, |score diff| < 1e-4), or, for the R-CNN family, fails with one line naming the
operators that do not convert. Needs the onnx extra (pip install "ppdet[onnx]"); without it
those tests skip and only the missing-extra message is checked."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.errors import PpdetError
from ppdet.export import onnx_backend
from ppdet.export.exporter import export_model
from ppdet.export.infer_cfg import read_infer_cfg
from tests.conftest import ROOT as _ROOT

ROOT = Path(_ROOT)
HAVE_ONNX = all(
    __import__("importlib").util.find_spec(m) is not None for m in ("paddle2onnx", "onnxruntime")
)
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX, reason='the onnx extra is not installed (pip install "ppdet[onnx]")'
)

# (demo config, overrides that shrink it, output-layer parameters scaled up so that the
# untrained model's class scores spread over (0, 1) instead of all sitting near one value)
CONVERTS = {
    "YOLOv3": (
        "yolov3/yolov3_mobilenet_v1_demo.yml",
        ["BBoxPostProcess.nms.nms_top_k=40", "BBoxPostProcess.nms.keep_top_k=60"],
        "yolo_output",
    ),
    "SSD": (
        "ssd/ssd_mobilenet_v1_demo.yml",
        ["MobileNet.scale=0.25", "BBoxPostProcess.nms.nms_top_k=30"],
        "",  # softmax scores already spread
    ),
    "RetinaNet": (
        "retinanet/retinanet_r18_fpn_demo.yml",
        ["FPN.out_channel=16", "RetinaHead.nms.nms_top_k=30", "RetinaHead.nms.keep_top_k=50"],
        "retina_cls",
    ),
}
RCNN = {
    "FasterRCNN": ("faster_rcnn/faster_rcnn_r18_fpn_demo.yml", ["FPN.out_channel=16"]),
    "CascadeMaskRCNN": (  # architecture CascadeRCNN with a mask head
        "cascade_rcnn/cascade_mask_rcnn_r18_fpn_demo.yml",
        ["FPN.out_channel=16", "MaskFeat.num_convs=1"],
    ),
}


SHARPEN = 6.0


def tiny(config: str, overrides: list[str], sharpen: str = ""):
    """(cfg, eval-mode model) of a demo config with 3 classes, seeded random weights; every
    output layer whose parameter names contain ``sharpen`` given SHARPEN times its weights and
    zero biases (no prior-probability bias)."""
    cfg = ppdet.load_config(str(ROOT / "configs" / config), ["num_classes=3", *overrides])
    paddle.seed(0)
    model = ppdet.build_model(cfg)
    for name, param in model.named_parameters():
        if sharpen and sharpen in name:
            param.set_value(param * SHARPEN if name.endswith("weight") else param * 0.0)
    model.eval()
    return cfg, model


def batch_of_two(model_dir: Path) -> dict[str, np.ndarray]:
    """Two noise images of the exported input size (128x160 if free); the second was
    downscaled by 2 from its original."""
    h, w = read_infer_cfg(model_dir / "infer_cfg.yml").image_shape[1:]
    h, w = (h, w) if h > 0 and w > 0 else (128, 160)
    rng = np.random.default_rng(0)
    return {
        "image": rng.normal(size=(2, 3, h, w)).astype("float32"),
        "im_shape": np.array([[h, w], [h, w]], "float32"),
        "scale_factor": np.array([[1.0, 1.0], [0.5, 0.5]], "float32"),
    }


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1y1x2y2 box with each of boxes [K, 4]."""
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area - inter, 1e-9)


def assert_same_detections(expected, got, num_expected, num_got) -> None:
    """Per image the same number of rows, and every expected row matched one-to-one by a row of
    the same class with IoU > 0.99 and |score difference| < 1e-4."""
    assert num_got.tolist() == num_expected.tolist()
    starts = np.concatenate([[0], np.cumsum(num_expected)])
    for b in range(len(num_expected)):
        exp, out = (rows[starts[b] : starts[b + 1]] for rows in (expected, got))
        used = np.zeros(len(out), bool)
        for row in exp[np.argsort(-exp[:, 1], kind="stable")]:
            ok = (out[:, 0] == row[0]) & ~used & (np.abs(out[:, 1] - row[1]) < 1e-4)
            overlaps = np.where(ok, iou(row[2:], out[:, 2:]), 0.0)
            j = int(np.argmax(overlaps))
            assert overlaps[j] > 0.99, f"image {b}: no match for {row.tolist()}"
            used[j] = True


@needs_onnx
@pytest.mark.parametrize("arch", sorted(CONVERTS))
def test_onnx_gives_the_eager_detections(arch, tmp_path):
    config, overrides, sharpen = CONVERTS[arch]
    cfg, model = tiny(config, overrides, sharpen)
    model_dir = export_model(cfg, "", tmp_path / "model", model=model)
    feeds = batch_of_two(model_dir)
    eager = model.predict({k: paddle.to_tensor(v) for k, v in feeds.items()})
    bbox, num = eager["bbox"].numpy(), eager["bbox_num"].numpy()
    assert num.min() > 5 and len(np.unique(bbox[:, 0])) > 1  # a real comparison
    assert np.ptp(bbox[:, 1]) > 0.02  # scores spread: no near-ties decide what is kept

    path = onnx_backend.convert(model_dir)
    assert path == model_dir / "model.onnx" and path.stat().st_size > 0
    session = onnx_backend.OnnxSession(path, threads=1)
    assert "image" in session.input_names and "scale_factor" in session.input_names
    out_bbox, out_num = session.run(feeds)
    assert out_bbox.shape == (out_num.sum(), 6)
    assert_same_detections(bbox, out_bbox, num, out_num)
    assert onnx_backend.onnx_model(model_dir) == path  # up to date: not converted again


@needs_onnx
@pytest.mark.parametrize("arch", sorted(RCNN))
def test_rcnn_does_not_convert_and_says_which_ops(arch, tmp_path):
    config, overrides = RCNN[arch]
    cfg, model = tiny(config, overrides)
    model_dir = export_model(cfg, "", tmp_path / "model", model=model)
    with pytest.raises(onnx_backend.OnnxError) as info:
        onnx_backend.convert(model_dir)
    message = str(info.value)
    assert "\n" not in message and str(model_dir) in message
    assert f"({cfg['architecture']})" in message
    assert "pd_op.generate_proposals" in message and "pd_op.distribute_fpn_proposals" in message
    assert 'backend="paddle"' in message
    assert not (model_dir / "model.onnx").exists()  # nothing half-written
    assert isinstance(info.value, PpdetError)


@needs_onnx
def test_convert_without_an_exported_model_names_the_folder(tmp_path):
    with pytest.raises(onnx_backend.OnnxError, match="export it first"):
        onnx_backend.convert(tmp_path)


def test_missing_extra_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(onnx_backend.OnnxError) as info:
        onnx_backend.OnnxSession(tmp_path / "model.onnx")
    assert 'pip install "ppdet[onnx]"' in str(info.value) and "\n" not in str(info.value)


def test_importing_ppdet_does_not_need_the_extra():
    import subprocess

    code = (
        "import sys; sys.modules['onnxruntime'] = sys.modules['paddle2onnx'] = None; "
        "import ppdet, ppdet.export, ppdet.export.onnx_backend"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-500:]
