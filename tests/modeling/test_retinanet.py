"""RetinaNet: checkpoint names, head init, decoding, loss, a few training steps, eval, tools.

Full-size equivalence with PaddleDetection 2.6 (same bbox/bbox_num and losses from its own
random .pdparams) is checked by bench/compare_retinanet.py (needs the reference venv).
"""

import math
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.modeling.postprocess import RetinaBox, retina_decode
from tests.modeling.detector_checks import (
    assert_loss_drops,
    check_detections,
    check_no_detections,
    demo_overrides,
    eval_inputs,
    predict,
    run_tools,
    state_lines,
    train_steps,
)

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "tests" / "fixtures" / "compat"
DEMO = str(REPO / "configs" / "retinanet" / "retinanet_r18_fpn_demo.yml")
TINY = [  # ResNet-18, 32-channel FPN/towers, 3 classes
    "num_classes=3",
    "FPN.out_channel=32",
    "RetinaHead.conv_feat.feat_out=32",
    "RetinaHead.conv_feat.num_convs=1",
]
SIZE = 96


@pytest.mark.parametrize(
    "config, names",
    [
        ("retinanet_r50_fpn_1x_coco.yml", "retinanet_r50_fpn.txt"),
        ("retinanet_r101_fpn_2x_coco.yml", "retinanet_r101_fpn.txt"),
    ],
)
def test_names_and_shapes_equal_paddledetection(config, names):
    model = ppdet.build_model(ppdet.load_config(str(REPO / "configs" / "retinanet" / config)))
    assert state_lines(model) == (COMPAT / names).read_text().splitlines()


def tiny_model(seed=0, extra=()):
    paddle.seed(seed)
    return ppdet.build_model(ppdet.load_config(DEMO, TINY + list(extra)))


def test_head_init_and_output_shapes():
    model = tiny_model()
    head = model.head
    np.testing.assert_allclose(head.retina_cls.bias.numpy(), -math.log(99), rtol=1e-6)
    assert head.retina_cls.weight.shape == [27, 32, 3, 3] and head.retina_reg.weight.shape == [
        36,
        32,
        3,
        3,
    ]
    assert float(head.retina_reg.bias.abs().max()) == 0
    assert abs(float(head.retina_cls.weight.std()) - 0.01) < 1e-3
    feats = [paddle.zeros([2, 32, s, s]) for s in (12, 6, 3, 2, 1)]
    cls_logits, deltas = head(feats)
    assert [x.shape for x in cls_logits] == [[2, 27, s, s] for s in (12, 6, 3, 2, 1)]
    assert [x.shape for x in deltas] == [[2, 36, s, s] for s in (12, 6, 3, 2, 1)]


def test_decode_known_deltas():
    # 1 level, 1x2 grid, A = 1, C = 2; anchors given directly
    anchors = [paddle.to_tensor([[0, 0, 10, 20], [10, 0, 30, 10]], "float32")]
    logits = paddle.to_tensor([[[[0.0, 2.0]], [[-1.0, -3.0]]]])  # [1, 2, 1, 2]
    deltas = paddle.zeros([1, 4, 1, 2])
    deltas[0, :, 0, 1] = paddle.to_tensor([0.1, -0.2, math.log(2.0), 0.0])
    scale = paddle.to_tensor([[0.5, 0.25]])  # (h, w)
    boxes, scores = retina_decode([logits], [deltas], anchors, scale, num_classes=2)
    sig = lambda v: 1 / (1 + np.exp(-np.array(v)))  # noqa: E731
    np.testing.assert_allclose(scores.numpy()[0], sig([[0.0, 2.0], [-1.0, -3.0]]), rtol=1e-6)
    # anchor 1: w 20, h 10, centre (20, 5) -> centre (22, 3), w 40, h 10 -> (2, -2, 42, 8)
    expected = np.array([[0, 0, 10, 20], [2, -2, 42, 8]]) * [4, 2, 4, 2]  # / (w, h) scale
    np.testing.assert_allclose(boxes.numpy()[0], expected, rtol=1e-5, atol=1e-5)
    # nms_pre 1 keeps the anchor with the best class score (anchor 1: logit 2)
    boxes, scores = retina_decode([logits], [deltas], anchors, scale, num_classes=2, nms_pre=1)
    np.testing.assert_allclose(boxes.numpy()[0], expected[1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores.numpy()[0, :, 0], sig([2.0, -3.0]), rtol=1e-6)
    # RetinaBox: the same as the decoder of BBoxPostProcess, reading the raw output dict
    raw = {"cls_logits": [logits], "bbox_deltas": [deltas], "anchors": anchors}
    boxes, scores, rois_num = RetinaBox(num_classes=2, nms_pre=1)(raw, {"scale_factor": scale})
    np.testing.assert_allclose(boxes.numpy()[0], expected[1:], rtol=1e-5, atol=1e-5)
    assert scores.shape == [1, 2, 1] and rois_num is None


def fixed_batch():
    rng = np.random.default_rng(0)
    return {
        "image": paddle.to_tensor(rng.normal(size=(2, 3, SIZE, SIZE)), "float32"),
        "im_shape": paddle.to_tensor([[SIZE, SIZE]] * 2, "float32"),
        "scale_factor": paddle.to_tensor([[1.0, 1.0], [0.5, 0.5]], "float32"),
        "gt_bbox": paddle.to_tensor(
            [[[10, 10, 50, 60], [40, 30, 90, 90]], [[5, 50, 40, 90], [0, 0, 0, 0]]], "float32"
        ),
        "gt_class": paddle.to_tensor([[[0], [2]], [[1], [0]]], "int32"),
        "pad_gt_mask": paddle.to_tensor([[[1], [1]], [[1], [0]]], "float32"),
    }


def test_loss_names_and_an_image_without_gt():
    model = tiny_model()
    model.train()
    batch = fixed_batch()
    losses = model.losses(batch)
    assert sorted(losses) == ["loss", "loss_cls", "loss_reg", "reg_loss_by_scale"]
    assert all(np.isfinite(float(losses[k])) for k in ("loss", "loss_cls", "loss_reg"))
    split = losses["reg_loss_by_scale"]  # the Stitcher's feedback: sums to loss_reg * num_pos
    assert sorted(split) == ["large", "medium", "small"]
    assert all(v.stop_gradient and float(v) >= 0 for v in split.values())
    np.testing.assert_allclose(
        float(losses["loss"]), float(losses["loss_cls"] + losses["loss_reg"]), rtol=1e-6
    )
    batch["pad_gt_mask"] = paddle.zeros_like(batch["pad_gt_mask"])  # no real boxes at all
    losses = model.losses(batch)
    assert float(losses["loss_reg"]) == 0 and 0 < float(losses["loss_cls"]) < 1e6
    losses["loss"].backward()


def test_training_steps_lower_the_loss():
    model = tiny_model(extra=["ResNet.freeze_at=-1"])
    assert_loss_drops(train_steps(model, fixed_batch(), steps=8)["loss"])


def test_eval_output_format_and_no_detections():
    model = tiny_model(extra=["RetinaHead.nms.score_threshold=0.0"])  # untrained: keep all
    batch = eval_inputs(fixed_batch())
    out = predict(model, batch)
    bbox = check_detections(out, [100, 100], num_classes=3)
    assert bbox.shape == (200, 6) and (bbox[:, 1] > 0).all()
    # image 1 was downscaled by 2: its boxes are in the twice larger original image
    assert np.abs(bbox[100:, 2:]).max() > SIZE
    # a threshold no score passes: no rows at all
    model = tiny_model(extra=["RetinaHead.nms.score_threshold=0.5"])
    out = predict(model, batch)
    check_no_detections(out, 2)


def test_tools_train_eval_infer(tiny_demo_data, tmp_path):
    opts = demo_overrides(tiny_demo_data, tmp_path / "out") + [
        "FPN.out_channel=16",
        "RetinaHead.conv_feat.feat_out=16",
        "RetinaHead.conv_feat.num_convs=1",
        "RetinaHead.nms.score_threshold=0.0",
    ]
    out = run_tools(DEMO, opts, tiny_demo_data, tmp_path, "retinanet_r18_fpn_demo")
    assert "loss_cls" in out["train"] and "loss_reg" in out["train"]
    assert "eval summary: AP@[.5:.95] = " in out["eval"]
