"""Faster R-CNN: checkpoint names, sampling/assignment on hand-made boxes, proposals, RoIAlign,
post-process, losses, a few training steps, eval, tools.

Full-size equivalence with PaddleDetection 2.6 (same bbox/bbox_num and the same four losses
from its own random .pdparams, FPN and C4) is checked by bench/compare_faster_rcnn.py.
"""

import math
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.modeling.assigners import BBoxAssigner, subsample_labels
from ppdet.modeling.assigners.rpn_target import RPNTargetAssign
from ppdet.modeling.heads.bbox_head import RoIAlign
from ppdet.modeling.heads.proposal_generator import ProposalGenerator
from ppdet.modeling.postprocess import BBoxPostProcess, MultiClassNMS, RCNNBox
from ppdet.ops.roi import distribute_fpn_proposals, roi_align
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
DEMO = str(REPO / "configs" / "faster_rcnn" / "faster_rcnn_r18_fpn_demo.yml")
TINY = ["num_classes=3", "FPN.out_channel=32", "TwoFCHead.out_channel=64"]
SIZE = 96
T = paddle.to_tensor


@pytest.mark.parametrize(
    "config, names",
    [
        ("faster_rcnn_r50_fpn_1x_coco.yml", "faster_rcnn_r50_fpn.txt"),
        ("faster_rcnn_r50_1x_coco.yml", "faster_rcnn_r50.txt"),
    ],
)
def test_names_and_shapes_equal_paddledetection(config, names):
    model = ppdet.build_model(ppdet.load_config(str(REPO / "configs" / "faster_rcnn" / config)))
    assert state_lines(model) == (COMPAT / names).read_text().splitlines()


def test_subsample_labels():
    labels = T([1, 0, -1, 1, 0, 0, 1, 0], "int32")
    fg, bg = subsample_labels(labels, 4, 0.5, bg_label=0, use_random=False)
    assert fg.numpy().tolist() == [0, 3] and bg.numpy().tolist() == [1, 4]
    # few foreground items: the background fills the rest
    fg, bg = subsample_labels(T([0, 0, 2, 0, 0, -1], "int32"), 4, 0.5, bg_label=0, use_random=False)
    assert fg.numpy().tolist() == [2] and bg.numpy().tolist() == [0, 1, 3]
    paddle.seed(3)
    fg, bg = subsample_labels(labels, 4, 0.5, bg_label=0, use_random=True)
    assert sorted(fg.numpy().tolist()) in ([0, 3], [0, 6], [3, 6]) and len(set(bg.numpy())) == 2
    assert set(bg.numpy().tolist()) <= {1, 4, 5, 7}
    # R-CNN labels: background is num_classes (3), class 0 is foreground
    fg, bg = subsample_labels(T([3, 0, 3, 2], "int32"), 8, 0.25, bg_label=3, use_random=False)
    assert fg.numpy().tolist() == [1, 3] and bg.numpy().tolist() == [0, 2]


def test_rpn_targets_on_hand_made_boxes():
    anchors = T(
        [[0, 0, 10, 10], [0, 0, 10, 12], [20, 20, 30, 30], [5, 0, 15, 10], [50, 50, 60, 60]],
        "float32",
    )
    gt = T([[0, 0, 10, 10]], "float32")
    # IoU with the gt: 1, 10/12, 0, 1/3, 0 -> pos, pos, neg, ignored, neg
    assign = RPNTargetAssign(batch_size_per_im=4, fg_fraction=0.5, use_random=False)
    labels, deltas = assign(anchors, gt)
    assert labels.numpy().tolist() == [1, 1, 0, -1, 0]
    # anchor 1 (h 12, centre y 6) -> gt (h 10, centre y 5): dy = -1/12, dh = log(10/12)
    np.testing.assert_allclose(
        deltas.numpy()[1], [0, -1 / 12, 0, math.log(10 / 12)], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(deltas.numpy()[0], 0, atol=1e-7)
    # a budget of 2 with half foreground: one positive, one negative
    labels, _ = RPNTargetAssign(batch_size_per_im=2, fg_fraction=0.5, use_random=False)(anchors, gt)
    assert labels.numpy().tolist() == [1, -1, 0, -1, -1]
    labels, deltas = assign(anchors, paddle.zeros([0, 4]))  # no gt: background only
    assert labels.numpy().tolist() == [0, 0, 0, 0, -1] and float(deltas.abs().sum()) == 0


def test_bbox_assigner_appends_gt_and_samples():
    rois = T([[0, 0, 10, 10], [0, 0, 10, 20], [30, 30, 40, 40]], "float32")
    gt = [T([[0, 0, 10, 12]], "float32")]
    cls = [T([2], "int32")]
    assigner = BBoxAssigner(batch_size_per_im=4, fg_fraction=0.5, num_classes=3, use_random=False)
    out_rois, num, labels, gt_boxes = assigner(rois, T([3], "int32"), gt, cls)
    # IoUs 10/12, 0.6, 0, and the appended gt 1: foreground 0, 1, 3 (at most 2), background 2
    assert num.numpy().tolist() == [3]
    np.testing.assert_array_equal(
        out_rois.numpy(), [[0, 0, 10, 10], [0, 0, 10, 20], [30, 30, 40, 40]]
    )
    assert labels.numpy().tolist() == [2, 2, 3]
    np.testing.assert_array_equal(gt_boxes.numpy(), [[0, 0, 10, 12]] * 3)
    # two images, the second without gt: every proposal is background, gt boxes zero
    out_rois, num, labels, gt_boxes = assigner(
        paddle.concat([rois, rois]),
        T([3, 3], "int32"),
        gt + [paddle.zeros([0, 4])],
        cls + [paddle.zeros([0], "int32")],
    )
    assert num.numpy().tolist() == [3, 3] and labels.numpy().tolist() == [2, 2, 3, 3, 3, 3]
    assert float(gt_boxes[3:].abs().sum()) == 0


def test_proposals_shapes_and_clipping():
    paddle.seed(0)
    gen = ProposalGenerator(pre_nms_top_n=50, post_nms_top_n=20, nms_thresh=0.7, min_size=0.0)
    sizes = [(8, 8), (4, 4)]
    scores = [paddle.randn([2, 3, h, w]) for h, w in sizes]
    deltas = [paddle.randn([2, 12, h, w]) * 0.1 for h, w in sizes]
    anchors = ppdet.modeling.anchors.AnchorGenerator([[8], [16]], [0.5, 1.0, 2.0], [4, 8])(sizes)
    im_shape = T([[32, 32], [20, 28]], "float32")
    rois, num = gen(scores, deltas, anchors, im_shape)
    assert num.numpy().sum() == rois.shape[0] and all(0 < n <= 20 for n in num.numpy())
    per_image = np.split(rois.numpy(), np.cumsum(num.numpy())[:-1])
    for r, (h, w) in zip(per_image, [(32, 32), (20, 28)]):
        assert (
            r.shape[1] == 4
            and (r[:, [0, 1]] >= 0).all()
            and (r[:, 2] <= w).all()
            and (r[:, 3] <= h).all()
        )
    # a single level (C4) keeps post_nms_top_n per image
    rois, num = ProposalGenerator(50, 10, 0.7, 0.0)(scores[:1], deltas[:1], anchors[:1], im_shape)
    assert all(n <= 10 for n in num.numpy())


def per_image_proposals(gen, scores, deltas, anchors, im_shape):
    """The proposals one image at a time: each level's ``generate_proposals``, the levels
    pooled, the ``post_nms_top_n`` most probable kept if there are more."""
    top = gen.pre_nms_top_n if gen.topk_after_collect else gen.post_nms_top_n
    out = []
    for b in range(im_shape.shape[0]):
        rois, probs = [], []
        for s, d, a in zip(scores, deltas, anchors):
            grid = a.reshape([s.shape[2], s.shape[3], s.shape[1], 4])
            r, p, _ = paddle.vision.ops.generate_proposals(
                s[b : b + 1], d[b : b + 1], im_shape[b : b + 1], grid, paddle.ones_like(grid),
                pre_nms_top_n=gen.pre_nms_top_n, post_nms_top_n=top, nms_thresh=gen.nms_thresh,
                min_size=gen.min_size, pixel_offset=False, return_rois_num=True,
            )  # fmt: skip
            rois.append(r)
            probs.append(p.flatten())
        rois, probs = paddle.concat(rois), paddle.concat(probs)
        if len(scores) > 1 and rois.shape[0] > gen.post_nms_top_n:
            rois = paddle.gather(rois, paddle.topk(probs, gen.post_nms_top_n)[1])
        out.append(rois.numpy())
    return out


@pytest.mark.parametrize("top_after_collect", [False, True])
def test_batched_proposals_equal_image_by_image(top_after_collect):
    paddle.seed(1)
    sizes = [(12, 16), (6, 8), (3, 4)]
    anchors = ppdet.modeling.anchors.AnchorGenerator([[8], [16], [32]], [0.5, 1.0, 2.0], [4, 8, 16])
    scores = [paddle.randn([3, 3, h, w]) * 2 for h, w in sizes]
    deltas = [paddle.randn([3, 12, h, w]) * 0.2 for h, w in sizes]
    im_shape = T([[48, 64], [40, 60], [30, 64]], "float32")
    for post in (40, 150, 1000):  # cut for every image, some, none
        gen = ProposalGenerator(200, post, 0.7, 0.0, topk_after_collect=top_after_collect)
        for levels in (3, 1):  # FPN, and one level (C4)
            args = (scores[:levels], deltas[:levels], anchors(sizes)[:levels], im_shape)
            rois, num = gen(*args)
            expected = per_image_proposals(gen, *args)
            assert num.numpy().tolist() == [len(e) for e in expected] and num.dtype == paddle.int32
            np.testing.assert_array_equal(rois.numpy(), np.concatenate(expected))


def test_roi_align_and_level_assignment():
    feat = paddle.full([2, 3, 8, 8], 2.5)
    rois = T([[0, 0, 16, 16], [4, 4, 20, 12], [8, 8, 24, 24]], "float32")
    out = roi_align(feat, rois, T([1, 2], "int32"), 7, 0.25, sampling_ratio=0, aligned=True)
    assert out.shape == [3, 3, 7, 7]
    np.testing.assert_allclose(out.numpy(), 2.5, rtol=1e-6)
    assert roi_align(feat, paddle.zeros([0, 4]), T([0, 0], "int32"), 7, 0.25).shape == [0, 3, 7, 7]
    # sqrt(area) 56 -> level 2 (clipped from 2), 112 -> 3, 224 -> 4, 448 -> 5, 1000 -> 5
    sizes = [56, 112, 224, 448, 1000]
    boxes = T([[0, 0, s, s] for s in sizes], "float32")
    per_level, restore, nums = distribute_fpn_proposals(boxes, T([5], "int32"), 2, 5)
    assert [r.shape[0] for r in per_level] == [1, 1, 1, 2]
    assert [int(n.sum()) for n in nums] == [1, 1, 1, 2]
    gathered = paddle.gather(paddle.concat(per_level), restore.flatten())
    np.testing.assert_array_equal(gathered.numpy(), boxes.numpy())
    # pyramid extraction: each RoI reads its own level (here filled with the level number)
    feats = [paddle.full([1, 1, 64 // 2**i, 64 // 2**i], float(i + 2)) for i in range(5)]
    extractor = RoIAlign(
        resolution=2, spatial_scale=[1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64], aligned=True
    )
    small_big = T([[0, 0, 150, 150], [0, 0, 250, 250], [0, 0, 10, 10]], "float32")
    levels = extractor(feats, small_big, T([3], "int32"))[:, 0, 0, 0].numpy()
    np.testing.assert_allclose(levels, [3, 4, 2])


def test_rcnn_post_process_hand_checked():
    # 2 images, 1 RoI each, 2 classes; zero deltas keep the RoI
    rois = T([[10, 20, 50, 60], [0, 0, 100, 40]], "float32")
    deltas = paddle.zeros([2, 8])
    deltas[1, 4:] = T([0.0, 0.0, 5 * math.log(2.0), 0.0])  # class 1 of RoI 1: twice as wide
    probs = T([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], "float32")  # background last
    raw = {"deltas": deltas, "scores": probs, "rois": rois, "rois_num": T([1, 1], "int32")}
    meta = {
        "im_shape": T([[80, 80], [60, 120]], "float32"),
        "scale_factor": T([[2.0, 2.0], [0.5, 0.5]], "float32"),
    }
    nms = MultiClassNMS(score_threshold=0.05, nms_top_k=-1, keep_top_k=100, nms_threshold=0.5)
    post = BBoxPostProcess(RCNNBox(), nms)
    bbox, num = post(raw, meta)
    assert num.numpy().tolist() == [2, 2] and num.dtype == paddle.int32
    got = {(int(r[0]), round(float(r[1]), 4)): r[2:].tolist() for r in bbox.numpy()[:2]}
    assert got == {(0, 0.1): [5, 10, 25, 30], (1, 0.7): [5, 10, 25, 30]}
    rows = bbox.numpy()[2:]
    np.testing.assert_allclose(rows[0], [0, 0.5, 0, 0, 200, 80], rtol=1e-6)
    # class 1: x from -50 to 150, clipped to the 120-wide input, then / 0.5 -> 240
    np.testing.assert_allclose(rows[1], [1, 0.3, 0, 0, 240, 80], rtol=1e-5)
    # nothing above the threshold: no rows at all
    nms.score_threshold = 0.9
    bbox, num = post(raw, meta)
    assert bbox.shape == [0, 6] and num.numpy().tolist() == [0, 0]
    # a box that clipping leaves without width is dropped, and its image's count with it
    nms.score_threshold = 0.05
    raw["rois"] = T([[10, 20, 50, 60], [130, 0, 200, 40]], "float32")  # right of image 1
    raw["deltas"] = paddle.zeros([2, 8])
    bbox, num = post(raw, meta)
    assert num.numpy().tolist() == [2, 0] and bbox.shape == [2, 6]


def tiny_model(seed=0, extra=()):
    return tiny_detector(DEMO, TINY + list(extra), seed)


def fixed_batch():
    return rcnn_batch(SIZE)


NAMES = ["loss", "loss_bbox_cls", "loss_bbox_reg", "loss_rpn_cls", "loss_rpn_reg"]


def test_loss_names_and_an_image_without_gt():
    model = tiny_model()
    model.train()
    batch = fixed_batch()
    losses = model.losses(batch)
    assert sorted(losses) == NAMES and all(np.isfinite(float(v)) for v in losses.values())
    parts = sum(float(losses[k]) for k in NAMES[1:])
    np.testing.assert_allclose(float(losses["loss"]), parts, rtol=1e-6)
    # an untrained head: cross-entropy about log(C + 1)
    assert abs(float(losses["loss_bbox_cls"]) - math.log(4)) < 0.1
    # random sampling (RPN anchors, RoIs) follows paddle.seed
    runs = []
    for _ in range(2):
        paddle.seed(7)
        runs.append([float(v) for v in model.losses(batch).values()])
    assert runs[0] == runs[1]
    batch["pad_gt_mask"] = paddle.zeros_like(batch["pad_gt_mask"])  # no real boxes at all
    losses = model.losses(batch)
    assert float(losses["loss_rpn_reg"]) == 0 and float(losses["loss_bbox_reg"]) == 0
    assert float(losses["loss_rpn_cls"]) > 0 and float(losses["loss_bbox_cls"]) > 0
    losses["loss"].backward()


def test_training_steps_lower_the_loss():
    model = tiny_model(extra=["ResNet.freeze_at=-1"])
    assert_loss_drops(train_steps(model, fixed_batch(), steps=6)["loss"])


def test_eval_output_format_and_no_detections():
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.0"])  # untrained: keep all
    batch = eval_inputs(fixed_batch())
    out = predict(model, batch)
    bbox = check_detections(out, [100, 100], num_classes=3)
    check_boxes_in_images(bbox, SIZE, first=100)  # 96x96, and 192x192 for the one downscaled by 2
    check_no_detections(
        predict(tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.99"]), batch), 2
    )


def test_tools_train_eval_infer(tiny_demo_data, tmp_path):
    opts = demo_overrides(tiny_demo_data, tmp_path / "out") + [
        "FPN.out_channel=16",
        "TwoFCHead.out_channel=32",
        "BBoxPostProcess.nms.score_threshold=0.0",
    ]
    out = run_tools(DEMO, opts, tiny_demo_data, tmp_path, "faster_rcnn_r18_fpn_demo")
    assert "loss_rpn_cls" in out["train"] and "loss_bbox_reg" in out["train"]
    assert "eval summary: AP@[.5:.95] = " in out["eval"]
