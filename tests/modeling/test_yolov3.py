"""A tiny YOLOv3 (MobileNetV1 x0.25, 64-channel neck, 3 classes, 96 px) end to end."""

from pathlib import Path

import numpy as np
import paddle
import pytest

from ppdet.modeling.architectures import YOLOv3
from ppdet.modeling.backbones import MobileNet
from ppdet.modeling.heads import YOLOv3Head
from ppdet.modeling.losses import YOLOv3Loss
from ppdet.modeling.necks import YOLOv3FPN
from ppdet.modeling.postprocess import BBoxPostProcess

REPO = Path(__file__).resolve().parents[2]
SIZE = 96
NUM_CLASSES = 3
# the COCO anchors scaled to a ~100 px input
ANCHORS = [[4, 5], [8, 15], [16, 11], [15, 30], [31, 22], [29, 59], [58, 45], [78, 99], [90, 90]]


def tiny_yolov3(seed=0):
    paddle.seed(seed)
    backbone = MobileNet(scale=0.25)
    neck = YOLOv3FPN(in_channels=backbone.out_channels, base_channels=64)
    head = YOLOv3Head(
        anchors=ANCHORS, num_classes=NUM_CLASSES, loss=YOLOv3Loss(), in_channels=neck.out_channels
    )
    return YOLOv3(backbone, neck, head, BBoxPostProcess())


def fixed_batch():
    rng = np.random.default_rng(0)
    boxes = [
        [[10, 10, 40, 50], [50, 20, 90, 90], [0, 0, 0, 0]],
        [[5, 60, 20, 80], [0] * 4, [0] * 4],
    ]
    return {
        "image": paddle.to_tensor(rng.normal(size=(2, 3, SIZE, SIZE)), "float32"),
        "im_shape": paddle.to_tensor([[SIZE, SIZE], [SIZE, SIZE]], "float32"),
        "scale_factor": paddle.to_tensor([[1.0, 1.0], [0.5, 0.4]], "float32"),
        "gt_bbox": paddle.to_tensor(boxes, "float32"),
        "gt_class": paddle.to_tensor([[[0], [2], [0]], [[1], [0], [0]]], "int32"),
        "gt_score": paddle.ones([2, 3, 1]),
        "pad_gt_mask": paddle.to_tensor([[[1], [1], [0]], [[1], [0], [0]]], "float32"),
    }


def eval_batch(batch):
    return {k: batch[k] for k in ("image", "im_shape", "scale_factor")}


def test_loss_falls_on_a_fixed_batch():
    model = tiny_yolov3()
    model.train()
    batch = fixed_batch()
    opt = paddle.optimizer.Adam(learning_rate=5e-3, parameters=model.parameters())
    history = []
    for _ in range(20):
        losses = model.losses(batch)
        assert set(losses) == {"loss", "loss_xy", "loss_wh", "loss_obj", "loss_cls"}
        assert all(np.isfinite(float(v)) and v.shape == [] for v in losses.values())
        losses["loss"].backward()
        opt.step()
        opt.clear_grad()
        history.append({k: float(v) for k, v in losses.items()})
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]  # ~0.25 in practice
    for name in ("loss_wh", "loss_cls", "loss_obj"):
        assert history[-1][name] < history[0][name], name


def check_detections(out, batch):
    bbox, bbox_num = out["bbox"].numpy(), out["bbox_num"].numpy()
    assert out["bbox"].dtype == paddle.float32 and out["bbox_num"].dtype == paddle.int32
    assert bbox.ndim == 2 and bbox.shape[1] == 6 and bbox_num.shape == (2,)
    assert bbox_num.sum() == len(bbox)
    original = np.floor(batch["im_shape"].numpy() / batch["scale_factor"].numpy() + 0.5)
    image_of_row = np.repeat(np.arange(2), bbox_num)
    h, w = original[image_of_row, 0], original[image_of_row, 1]
    classes, scores, x1, y1, x2, y2 = bbox.T
    assert np.isin(classes, np.arange(NUM_CLASSES)).all()
    assert ((scores > 0) & (scores <= 1)).all()
    assert ((0 <= x1) & (x1 <= x2) & (x2 <= w)).all()
    assert ((0 <= y1) & (y1 <= y2) & (y2 <= h)).all()
    return bbox_num


def make_first_image_silent(model, batch):
    """Set the head so that image 0 has no prediction above the thresholds and image 1 some.

    Every objectness logit is -30, except anchor 0 of level 0, which reads one neck channel k:
    logit = 100 * (f_k - mid) / gap, where mid/gap are the midpoint/difference of the two
    images' maxima of f_k. Image 0's best cell gets -50, image 1's +50.
    """
    with paddle.no_grad():
        feat = model.neck(model.backbone(batch["image"]))[0].numpy()  # [2, C, H, W]
    peak = feat.max(axis=(2, 3))  # [2, C]
    k = int(np.argmax(peak[1] - peak[0]))
    gap, mid = peak[1, k] - peak[0, k], (peak[1, k] + peak[0, k]) / 2
    assert gap > 0
    fields = 5 + NUM_CLASSES
    for level, conv in enumerate(model.yolo_head.yolo_outputs):
        weight = np.zeros(conv.weight.shape, np.float32)
        bias = np.zeros(conv.bias.shape, np.float32)
        bias[4::fields] = -30.0  # objectness of every anchor
        bias[5::fields] = 10.0  # class 0
        if level == 0:
            weight[4, k] = 100.0 / gap
            bias[4] = -100.0 * mid / gap
        conv.weight.set_value(weight)
        conv.bias.set_value(bias)


def test_eval_output_and_an_image_without_detections():
    model = tiny_yolov3()
    model.eval()
    batch = fixed_batch()
    batch["image"][0] = 0.0  # a blank image
    out = model.predict(eval_batch(batch))
    assert set(out) == {"bbox", "bbox_num"}
    assert (check_detections(out, batch) > 0).all()  # random weights: detections everywhere

    make_first_image_silent(model, batch)
    out = model.predict(eval_batch(batch))
    bbox_num = check_detections(out, batch)
    assert bbox_num[0] == 0 and bbox_num[1] > 0


def test_state_dict_round_trip(tmp_path):
    model = tiny_yolov3(seed=0)
    model.train()
    model.losses(fixed_batch())["loss"].backward()  # one pass moves the BN running statistics
    model.eval()
    batch = eval_batch(fixed_batch())
    expected = model.predict(batch)
    paddle.save(model.state_dict(), str(tmp_path / "model.pdparams"))

    fresh = tiny_yolov3(seed=1)
    fresh.eval()
    assert not np.allclose(fresh.predict(batch)["bbox"].numpy()[:5], expected["bbox"].numpy()[:5])
    missing, unexpected = fresh.set_state_dict(paddle.load(str(tmp_path / "model.pdparams")))
    assert not missing and not unexpected
    got = fresh.predict(batch)
    np.testing.assert_array_equal(got["bbox_num"].numpy(), expected["bbox_num"].numpy())
    np.testing.assert_array_equal(got["bbox"].numpy(), expected["bbox"].numpy())


@pytest.mark.parametrize("base", ["yolov3_darknet53", "yolov3_mobilenet_v1"])
def test_base_configs_build(base):
    """The _base_ model sections build through the config system (narrowed with -o)."""
    from ppdet.config.builder import create
    from ppdet.config.loader import load_config

    overrides = ["YOLOv3FPN.base_channels=64", "num_classes=3"]
    if base == "yolov3_mobilenet_v1":
        overrides.append("MobileNet.scale=0.25")
    cfg = load_config(str(REPO / "configs" / "_base_" / f"{base}.yml"), overrides)
    model = create(cfg["architecture"], cfg[cfg["architecture"]], cfg=cfg)
    assert isinstance(model, YOLOv3)
    assert model.neck.in_channels == model.backbone.out_channels
    assert model.yolo_head.num_classes == 3
    assert model.post_process.nms.nms_top_k == 1000
    assert model.post_process.decode.conf_thresh == 0.005
    assert [tuple(c.weight.shape[:2]) for c in model.yolo_head.yolo_outputs] == [
        (24, 128),
        (24, 64),
        (24, 32),
    ]
