"""Cascade R-CNN: checkpoint names, stage targets and refinement on hand-made boxes,
class-agnostic loss and decode, losses, a few training steps, eval, tools.

Full-size equivalence with PaddleDetection 2.6 (same bbox/bbox_num and the same eight losses
from its own random .pdparams) is checked by bench/compare_cascade_rcnn.py.
"""

import math
from pathlib import Path

import numpy as np
import paddle

import ppdet
from ppdet.modeling.assigners import BBoxAssigner
from ppdet.modeling.heads.bbox_head import rcnn_box_loss
from ppdet.modeling.heads.cascade_head import CascadeHead, CascadeTwoFCHead, refine_rois
from ppdet.modeling.postprocess import RCNNBox
from tests.modeling.detector_checks import (
    assert_loss_drops,
    check_boxes_in_images,
    check_detections,
    check_no_detections,
    demo_overrides,
    eval_inputs,
    predict,
    rcnn_batch,
    run_tools,
    state_lines,
    tiny_detector,
    train_steps,
)

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "tests" / "fixtures" / "compat"
DEMO = str(REPO / "configs" / "cascade_rcnn" / "cascade_rcnn_r18_fpn_demo.yml")
TINY = ["num_classes=3", "FPN.out_channel=32", "CascadeTwoFCHead.out_channel=64"]
SIZE = 96
T = paddle.to_tensor
STAGE_LOSSES = [f"loss_bbox_{kind}_stage{k}" for k in range(3) for kind in ("cls", "reg")]
NAMES = sorted(["loss", "loss_rpn_cls", "loss_rpn_reg"] + STAGE_LOSSES)


def test_names_and_shapes_equal_paddledetection():
    cfg = ppdet.load_config(
        str(REPO / "configs" / "cascade_rcnn" / "cascade_rcnn_r50_fpn_1x_coco.yml")
    )
    model = ppdet.build_model(cfg)
    lines = state_lines(model)
    assert lines == (COMPAT / "cascade_rcnn_r50_fpn.txt").read_text().splitlines()
    head = model.bbox_head
    assert head.bbox_weight == [[10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]]
    assert head.bbox_assigner.cascade_iou == [0.5, 0.6, 0.7]
    np.testing.assert_allclose(head.stage_loss_weights, [1 / 3] * 3)
    assert model.bbox_post_process.decode.prior_box_var == [30, 30, 15, 15]


def test_refine_rois_decodes_clips_and_drops_empty_boxes():
    # image 0: RoIs 0 and 1, image 1: RoI 2
    rois = T([[0, 0, 10, 10], [20, 0, 30, 10], [2, 2, 6, 6]], "float32")
    num = T([2, 1], "int32")
    # RoI 0: dx 2 / 20 = 0.1 of the width (1 px), dw 10 log 2 / 10 -> twice as wide:
    # centre 6, width 20 -> [-4, 0, 16, 10], clipped to the 14-wide image -> [0, 0, 14, 10].
    # RoI 1 lies right of the image: clipped to [14, 0, 14, 10], no width.
    deltas = T([[2.0, 0, 10 * math.log(2.0), 0], [0, 0, 0, 0], [0, 0, 0, 0]], "float32")
    im_shape = T([[12, 14], [12, 4]], "float32")
    out, out_num = refine_rois(deltas, rois, num, [20, 20, 10, 10], im_shape, drop_empty=False)
    assert out_num.numpy().tolist() == [2, 1] and out_num.dtype == paddle.int32
    # image 1 is 4 wide
    expected = [[0, 0, 14, 10], [14, 0, 14, 10], [2, 2, 4, 6]]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    # training drops boxes with no width or height; an image left with none keeps its first
    out, out_num = refine_rois(deltas, rois, num, [20, 20, 10, 10], im_shape, drop_empty=True)
    assert out_num.numpy().tolist() == [1, 1]
    np.testing.assert_allclose(out.numpy(), [[0, 0, 14, 10], [2, 2, 4, 6]], atol=1e-5)
    # image 0 has only empty boxes once clipped (keeps its first), image 1 a good one
    both = T([[20, 0, 30, 10], [16, 0, 18, 4], [0, 0, 4, 4]], "float32")
    out, out_num = refine_rois(paddle.zeros([3, 4]), both, num, [10, 10, 5, 5], im_shape, True)
    assert out_num.numpy().tolist() == [1, 1]
    np.testing.assert_allclose(out.numpy(), [[14, 0, 14, 10], [0, 0, 4, 4]])
    # an image without RoIs stays without
    out, out_num = refine_rois(
        paddle.zeros([1, 4]), both[2:], T([0, 1], "int32"), [10, 10, 5, 5], im_shape, True
    )
    assert out_num.numpy().tolist() == [0, 1] and out.shape == [1, 4]
    deltas.stop_gradient = False
    out, _ = refine_rois(deltas, rois, num, [20, 20, 10, 10], im_shape, drop_empty=True)
    assert out.stop_gradient  # the next stage does not train the previous one's deltas


def test_later_stages_label_every_roi_at_their_threshold():
    head = CascadeHead(
        CascadeTwoFCHead(in_channel=4, out_channel=8, resolution=2),
        num_classes=3,
        bbox_assigner=BBoxAssigner(num_classes=3, use_random=False),
    )
    gt = (
        [T([[0, 0, 10, 10]], "float32"), paddle.zeros([0, 4])],
        [T([1], "int32"), paddle.zeros([0], "int32")],
    )
    # IoU with the gt: 1, 100 / 150 = 0.667, 100 / 180 = 0.556, 0
    rois = T(
        [[0, 0, 10, 10], [0, 0, 10, 15], [0, 0, 10, 18], [20, 20, 30, 30], [1, 1, 5, 5]],
        "float32",
    )  # 4 RoIs of image 0, 1 of image 1
    num = T([4, 1], "int32")
    labels, boxes = head._label_all(rois, num, gt, 0.6)
    # no ignored band, no gt appended; image 1 has no gt: background, zero box
    assert labels.numpy().tolist() == [1, 1, 3, 3, 3]
    np.testing.assert_array_equal(boxes.numpy()[:4], [[0, 0, 10, 10]] * 4)
    assert float(boxes[4].abs().sum()) == 0 and boxes.shape == [5, 4]
    labels, _ = head._label_all(rois, num, gt, 0.7)
    assert labels.numpy().tolist() == [1, 3, 3, 3, 3]


def test_class_agnostic_loss_and_decode():
    # RoI 0 foreground (class 1) one pixel left of its gt: dx = 20 * 1 / 10 = 2 with [20, 20, 10, 10]
    rois = T([[0, 0, 10, 10], [30, 30, 40, 40]], "float32")
    gt = T([[1, 0, 11, 10], [0, 0, 0, 0]], "float32")
    labels = T([1, 3], "int32")
    scores = paddle.zeros([2, 4])
    loss_cls, loss_reg = rcnn_box_loss(
        scores, paddle.zeros([2, 4]), rois, labels, gt, 3, [20, 20, 10, 10]
    )
    np.testing.assert_allclose(float(loss_cls), math.log(4), rtol=1e-6)
    np.testing.assert_allclose(float(loss_reg), 2 / 2, rtol=1e-6)  # summed L1 / sampled RoIs
    deltas = T([[2.0, 0, 0, 0], [0, 0, 0, 0]], "float32")
    _, loss_reg = rcnn_box_loss(scores, deltas, rois, labels, gt, 3, [20, 20, 10, 10])
    assert float(loss_reg) < 1e-6
    # decode: one box per RoI, shared by every class
    probs = T([[0.2, 0.3, 0.1, 0.4], [0.1, 0.1, 0.1, 0.7]], "float32")
    raw = {"deltas": deltas, "scores": probs, "rois": rois, "rois_num": T([2], "int32")}
    boxes, cls_scores, num = RCNNBox([20, 20, 10, 10])(raw, {"im_shape": T([[50, 50]], "float32")})
    assert boxes.shape == [2, 3, 4] and num.numpy().tolist() == [2]
    np.testing.assert_allclose(boxes.numpy()[0], [[1, 0, 11, 10]] * 3, atol=1e-5)
    np.testing.assert_allclose(cls_scores.numpy(), probs.numpy()[:, :3])


def tiny_model(seed=0, extra=()):
    return tiny_detector(DEMO, TINY + list(extra), seed)


def fixed_batch():
    return rcnn_batch(SIZE)


def test_loss_names_and_an_image_without_gt():
    model = tiny_model()
    model.train()
    batch = fixed_batch()
    losses = model.losses(batch)
    assert sorted(losses) == NAMES and all(np.isfinite(float(v)) for v in losses.values())
    parts = sum(float(losses[k]) for k in NAMES if k != "loss")
    np.testing.assert_allclose(float(losses["loss"]), parts, rtol=1e-6)
    # an untrained stage: cross-entropy about log(C + 1), weighted by 1/3
    for k in range(3):
        assert abs(3 * float(losses[f"loss_bbox_cls_stage{k}"]) - math.log(4)) < 0.15
    # stage 0 saw the appended gt boxes, so it has foreground RoIs to regress
    assert float(losses["loss_bbox_reg_stage0"]) > 0
    batch["pad_gt_mask"] = paddle.zeros_like(batch["pad_gt_mask"])  # no real boxes at all
    losses = model.losses(batch)
    assert all(float(losses[f"loss_bbox_reg_stage{k}"]) == 0 for k in range(3))
    assert all(float(losses[f"loss_bbox_cls_stage{k}"]) > 0 for k in range(3))
    losses["loss"].backward()


def test_training_steps_lower_the_loss():
    model = tiny_model(extra=["ResNet.freeze_at=-1"])
    assert_loss_drops(train_steps(model, fixed_batch(), steps=6)["loss"])


def test_eval_mean_of_stages_output_format_and_no_detections():
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.0"])  # untrained: keep all
    batch = eval_inputs(fixed_batch())
    out = predict(model, batch)
    with paddle.no_grad():
        # the head's probabilities are the mean of the three stages' softmax, each stage on
        # the boxes the previous one refined
        raw = model(batch)
        feats = model.features(batch["image"])
        rois, rois_num = raw["rpn"]["rois"], raw["rpn"]["rois_num"]
        head, stage_probs, d = model.bbox_head, [], None
        for k in range(3):
            if k:
                rois, rois_num = refine_rois(
                    d, rois, rois_num, head.bbox_weight[k - 1], batch["im_shape"], False
                )
            _, s, d = head._stage(head.roi_extractor(feats, rois, rois_num), k)
            stage_probs.append(paddle.nn.functional.softmax(s, axis=-1).numpy())
    roi = raw["roi"]
    np.testing.assert_allclose(
        roi["scores"].numpy(), np.mean(stage_probs, axis=0), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(roi["rois"].numpy(), rois.numpy())
    np.testing.assert_allclose(roi["deltas"].numpy(), d.numpy())
    bbox = check_detections(out, [100, 100], num_classes=3)
    check_boxes_in_images(bbox, SIZE, first=100)  # 96x96, and 192x192 for the one downscaled by 2
    check_no_detections(
        predict(tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.99"]), batch), 2
    )


def test_tools_train_eval_infer(tiny_demo_data, tmp_path):
    opts = demo_overrides(tiny_demo_data, tmp_path / "out") + [
        "FPN.out_channel=16",
        "CascadeTwoFCHead.out_channel=32",
        "BBoxPostProcess.nms.score_threshold=0.0",
    ]
    out = run_tools(DEMO, opts, tiny_demo_data, tmp_path, "cascade_rcnn_r18_fpn_demo")
    assert "loss_bbox_cls_stage0" in out["train"] and "loss_bbox_reg_stage2" in out["train"]
    assert "eval summary: AP@[.5:.95] = " in out["eval"]
