"""Fluid-era (PaddleDetection v0.1) training targets, each a config choice: +1 box coding against
Paddle's legacy ``box_coder`` and hand-computed numbers, +1 IoU, the RPN straddle filter and
fluid's sampling rules, v0.1's RoI / mask / RetinaNet labels on tiny hand-made boxes; the v0.1
configs declare them (``ppdet.modeling.conventions``) and a tiny v0.1 Faster R-CNN FPN trains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddle.vision import ops as vops

import ppdet
from ppdet.modeling.assigners import BBoxAssigner, MaskAssigner, MaxIoUAssigner
from ppdet.modeling.assigners.mask_target import polygon_boxes, polygons_to_mask
from ppdet.modeling.assigners.max_iou import fluid_iou, max_iou_assign, near_best_of_a_gt
from ppdet.modeling.assigners.rpn_target import RPNTargetAssign, inside_image
from ppdet.modeling.coders.delta_bbox import decode_deltas, encode_deltas
from ppdet.modeling.conventions import TRAINING_CONVENTIONS, model_conventions
from ppdet.modeling.heads.bbox_head import rcnn_box_loss
from ppdet.ops.boxes import box_iou
from tests.modeling.detector_checks import (
    assert_loss_drops,
    rcnn_batch,
    tiny_detector,
    train_steps,
)

REPO = Path(__file__).resolve().parents[2]
RCNN_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def t(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


# ---------------------------------------------------------------- +1 box coding


def test_plus_one_encoding_by_hand():
    src = t([[0, 0, 9, 9], [0, 0, 9, 9]])  # +1: 10 x 10, centre (5, 5)
    dst = t([[2, 0, 11, 9], [0, 0, 19, 9]])  # 10 x 10 centre (7, 5); 20 x 10 centre (10, 5)
    enc = encode_deltas(src, dst, legacy_plus_one=True).numpy()
    np.testing.assert_allclose(enc[0], [0.2, 0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(enc[1], [0.5, 0.0, math.log(2.0), 0.0], atol=1e-6)
    # 2.x: 9 x 9, centre 4.5; the same pair moves by 2 / 9 and 19 / 9
    np.testing.assert_allclose(
        encode_deltas(src, dst).numpy()[1], [5 / 9, 0.0, math.log(19 / 9), 0.0], atol=1e-6
    )
    # the R-CNN weights multiply: (10, 10, 5, 5)
    np.testing.assert_allclose(
        encode_deltas(src, dst, RCNN_WEIGHTS, legacy_plus_one=True).numpy()[1],
        [5.0, 0.0, 5 * math.log(2.0), 0.0],
        atol=1e-5,
    )


def test_plus_one_encoding_against_paddle_box_coder():
    """fluid's target ops code with BoxToDelta: both centres x1 + (x2 - x1 + 1) / 2. Paddle's
    legacy box_coder(encode_center_size, box_normalized=False) has the same +1 widths but puts
    the target's centre at (x1 + x2) / 2, half a pixel earlier; its decode is the exact
    inverse of our +1 encoding."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (6, 2))
    src = np.concatenate([xy, xy + rng.uniform(4, 80, (6, 2))], axis=1).astype("float32")
    xy = rng.uniform(0, 200, (6, 2))
    dst = np.concatenate([xy, xy + rng.uniform(4, 80, (6, 2))], axis=1).astype("float32")
    variances = [1.0 / w for w in RCNN_WEIGHTS]  # fluid's variances divide: 1 / our weights
    ours = encode_deltas(t(src), t(dst), RCNN_WEIGHTS, legacy_plus_one=True).numpy()  # [6, 4]
    legacy = vops.box_coder(
        t(src), variances, t(dst), code_type="encode_center_size", box_normalized=False
    ).numpy()[np.arange(6), np.arange(6)]  # [target, prior, 4] -> each box with its own
    np.testing.assert_allclose(ours[:, 2:], legacy[:, 2:], rtol=1e-5, atol=1e-5)  # dw, dh
    size = src[:, 2:] - src[:, :2] + 1  # [6, 2] the +1 widths and heights
    half_pixel = 0.5 * np.asarray(RCNN_WEIGHTS[:2]) / size
    np.testing.assert_allclose(ours[:, :2], legacy[:, :2] + half_pixel, rtol=1e-5, atol=1e-4)
    back = vops.box_coder(
        t(src),
        variances,
        paddle.to_tensor(ours).unsqueeze(0),  # [1, 6, 4]: delta j against prior j
        code_type="decode_center_size",
        box_normalized=False,
    ).numpy()[0]
    np.testing.assert_allclose(back, dst, rtol=1e-5, atol=1e-3)


def test_plus_one_decode_inverts_plus_one_encode():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 300, (20, 2))
    src = np.concatenate([xy, xy + rng.uniform(2, 90, (20, 2))], axis=1).astype("float32")
    dst = src + rng.uniform(-10, 10, (20, 4)).astype("float32")
    dst[:, 2:] = np.maximum(dst[:, 2:], dst[:, :2] + 1)
    for weights in ((1.0, 1.0, 1.0, 1.0), RCNN_WEIGHTS):
        deltas = encode_deltas(t(src), t(dst), weights, legacy_plus_one=True)
        back = decode_deltas(deltas, t(src), weights, clip_ratio=None, legacy_plus_one=True)
        np.testing.assert_allclose(back.numpy(), dst, atol=1e-3)
        # decoding +1 targets the 2.x way lands elsewhere (off by about half a pixel)
        other = decode_deltas(deltas, t(src), weights, clip_ratio=None).numpy()
        assert np.abs(other - dst).max() > 0.4


def test_rcnn_box_loss_codes_targets_as_the_config_says():
    rois, gt = t([[0, 0, 9, 9]]), t([[2, 0, 21, 9]])
    exact = encode_deltas(rois, gt, RCNN_WEIGHTS, legacy_plus_one=True)  # [1, 4]
    scores, labels = paddle.zeros([1, 3]), t([1], "int32")  # class 1 of 2, background 2

    def reg(plus_one):
        deltas = paddle.concat([paddle.zeros([1, 4]), exact], axis=1)  # class 1's columns
        return float(rcnn_box_loss(scores, deltas, rois, labels, gt, 2, RCNN_WEIGHTS, plus_one)[1])

    assert reg(True) < 1e-5 and reg(False) > 0.1


# ---------------------------------------------------------------- +1 IoU


def test_fluid_iou_by_hand():
    a = t([[0, 0, 9, 9]])
    b = t([[5, 0, 14, 9], [10, 0, 19, 9], [0, 0, 9, 9]])
    # +1: intersection 5 x 10 = 50 of two 100-pixel boxes -> 50 / 150; touching boxes share
    # no pixel (x 10 vs 9) -> 0; a box with itself -> 1
    np.testing.assert_allclose(fluid_iou(a, b).numpy(), [[1 / 3, 0.0, 1.0]], atol=1e-6)
    # 2.x: 4 x 9 = 36 of 81 + 81 - 36
    np.testing.assert_allclose(box_iou(a, b).numpy()[0, 0], 36 / 126, atol=1e-6)


def test_low_quality_matches_fluid_way():
    # anchor 1 is within 1e-5 of gt 0's best (anchor 0): a tie for fluid only
    iou = t([[0.5], [0.499995], [0.2]])
    assert near_best_of_a_gt(iou, fluid=True).numpy().tolist() == [True, True, False]
    assert near_best_of_a_gt(iou, fluid=False).numpy().tolist() == [True, False, False]
    # a gt box's best anchor with IoU below negative_overlap: 2.x makes it positive, fluid
    # labels negatives last, so it stays negative
    iou = t([[0.35, 0.0], [0.1, 0.8]])
    _, ours = max_iou_assign(iou, 0.5, 0.4, allow_low_quality=True)
    _, fluid = max_iou_assign(iou, 0.5, 0.4, allow_low_quality=True, fluid=True)
    assert ours.numpy().tolist() == [1, 1] and fluid.numpy().tolist() == [0, 1]


def test_retinanet_assigner_fluid_way():
    anchors = t([[0, 0, 9, 9], [40, 40, 49, 49]])
    gt = t([[0, 0, 15, 9]])  # +1 IoU with anchor 0: 100 / 160 = 0.625; 2.x: 81 / 135 = 0.6
    _, ours = MaxIoUAssigner(0.61, 0.4)(anchors, gt)
    _, fluid = MaxIoUAssigner(0.61, 0.4, allow_low_quality=False, fluid=True)(anchors, gt)
    assert ours.numpy().tolist() == [1, 0]  # only as the box's best anchor
    assert fluid.numpy().tolist() == [1, 0]  # above 0.61 with +1 widths
    _, ours = MaxIoUAssigner(0.61, 0.4, allow_low_quality=False)(anchors, gt)
    assert ours.numpy().tolist() == [-1, 0]
    assert MaxIoUAssigner(fluid=True).conventions == {"anchor_target_assign": "fluid"}
    assert MaxIoUAssigner().conventions == {}


# ---------------------------------------------------------------- RPN targets


def test_straddle_filter_by_hand():
    im_shape = t([32.0, 32.0])  # h, w
    anchors = t(
        [
            [0, 0, 31, 31],  # inside: covers pixels 0..31
            [1, 0, 32, 31],  # 1 px beyond the right border
            [-1, 0, 30, 31],  # 1 px beyond the left border
            [0, 0, 31, 34],  # 3 px beyond the bottom (fluid: y2 < h + t)
        ]
    )
    assert inside_image(anchors, im_shape, 0.0).numpy().tolist() == [True, False, False, False]
    assert inside_image(anchors, im_shape, 1.5).numpy().tolist() == [True, True, True, False]


def test_rpn_targets_ignore_straddling_anchors():
    anchors = t([[0, 0, 15, 31], [1, 0, 32, 31], [20, 20, 31, 31]])
    gt = t([[1, 0, 32, 31]])  # exactly the straddling anchor
    im_shape = t([32.0, 32.0])
    spec = dict(batch_size_per_im=8, use_random=False)
    labels, deltas = RPNTargetAssign(straddle_thresh=0.0, **spec)(anchors, gt, im_shape)
    # the best anchor is outside the image: no label, no target; the inside one (IoU
    # 434 / 992, between the thresholds) becomes the box's best anchor; the last one (IoU
    # 121 / 961) is negative
    assert labels.numpy().tolist() == [1, -1, 0]
    np.testing.assert_allclose(deltas.numpy()[1], [0, 0, 0, 0])
    labels, _ = RPNTargetAssign(straddle_thresh=-1.0, **spec)(anchors, gt, im_shape)
    assert labels.numpy().tolist() == [-1, 1, 0]  # disabled (2.x's default): every anchor
    with pytest.raises(ValueError, match="im_shape"):
        RPNTargetAssign(straddle_thresh=0.0)(anchors, gt)
    assert RPNTargetAssign(straddle_thresh=0.0, fluid=True).conventions == {
        "rpn_target_assign": "fluid",
        "rpn_straddle_thresh": 0.0,
    }
    assert RPNTargetAssign().conventions == {}


def test_rpn_targets_fluid_sampling_and_plus_one_deltas():
    anchors = t(
        [
            [0, 0, 9, 9],  # IoU (+1) with the gt 100 / 200 = 0.5: between the thresholds
            [0, 0, 19, 9],  # the gt itself: positive
            [30, 30, 39, 39],  # far: negative
            [50, 50, 59, 59],  # far: negative
        ]
    )
    gt = t([[0, 0, 19, 9]])
    labels, deltas = RPNTargetAssign(batch_size_per_im=4, use_random=False, fluid=True)(anchors, gt)
    assert labels.numpy().tolist() == [-1, 1, 0, 0]
    np.testing.assert_allclose(deltas.numpy()[0], [0.5, 0.0, math.log(2.0), 0.0], atol=1e-6)
    # a box whose best anchor overlaps it by less than negative_overlap: 2.x keeps that anchor
    # positive, fluid samples it as a negative (negatives are labelled last)
    gt = t([[0, 0, 59, 59]])  # best anchor: 100 / 3600
    fluid, _ = RPNTargetAssign(batch_size_per_im=8, use_random=False, fluid=True)(anchors[:1], gt)
    ours, _ = RPNTargetAssign(batch_size_per_im=8, use_random=False)(anchors[:1], gt)
    assert fluid.numpy().tolist() == [0] and ours.numpy().tolist() == [1]


def test_rpn_head_passes_the_image_border_to_its_targets():
    from ppdet.modeling.heads.rpn_head import RPNHead

    def head(straddle):
        paddle.seed(0)
        return RPNHead(
            anchor_generator={"anchor_sizes": [[32.0]], "strides": [16.0], "aspect_ratios": [1.0]},
            rpn_target_assign={"use_random": False, "straddle_thresh": straddle},
            in_channels=[4],
        )

    feats = [paddle.rand([1, 4, 4, 4])]
    gt = [t([[0, 0, 40, 40]])]
    losses = {}
    for straddle in (0.0, -1.0):
        h = head(straddle)
        h.train()
        raw = h(feats, t([[64.0, 64.0]]))
        assert raw["im_shape"].numpy().tolist() == [[64.0, 64.0]]
        losses[straddle] = float(h.get_loss(raw, gt)["loss_rpn_cls"])
    assert head(0.0).conventions == {"rpn_straddle_thresh": 0.0}
    # 16 anchors of 32 px on a 4 x 4 grid of a 64 px image: the border ones straddle
    assert losses[0.0] != pytest.approx(losses[-1.0], rel=1e-4)


# ---------------------------------------------------------------- R-CNN RoI labels


def test_rcnn_labels_fluid_way():
    gt, classes = t([[0, 0, 3, 3]]), t([2], "int32")
    # 2.x IoU: 2 x 3 = 6 of 9 + 12 - 6 -> 0.4 (background); +1: 3 x 4 = 12 of 16 + 20 - 12 -> 0.5
    rois = t([[1, 0, 5, 3], [20, 20, 30, 30]])
    ours = BBoxAssigner(8, 0.25, num_classes=3, use_random=False)
    fluid = BBoxAssigner(8, 0.25, num_classes=3, use_random=False, fluid=True)
    _, labels = ours.label(rois, gt, classes, 0.5, 0.5)
    assert labels.numpy().tolist() == [3, 3]
    _, labels = fluid.label(rois, gt, classes, 0.5, 0.5)
    assert labels.numpy().tolist() == [2, 3]
    # the gt box joins the proposals: fluid puts it first, 2.x last
    sampled, labels, matched = fluid.sample_image(rois, gt, classes)
    np.testing.assert_allclose(sampled.numpy()[:2], [[0, 0, 3, 3], [1, 0, 5, 3]])
    assert labels.numpy().tolist() == [2, 2, 3]
    np.testing.assert_allclose(matched.numpy()[:2], [[0, 0, 3, 3]] * 2)
    sampled, labels, _ = ours.sample_image(rois, gt, classes)
    np.testing.assert_allclose(sampled.numpy()[0], [0, 0, 3, 3])  # foreground first: the gt
    assert labels.numpy().tolist() == [2, 3, 3]
    assert fluid.conventions == {"proposal_labels": "fluid"} and ours.conventions == {}


def test_rcnn_fluid_match_is_the_first_gt_near_the_best():
    gt = t([[0, 0, 9, 9], [0, 0, 9, 9.00001]])  # the same box up to float noise
    matched, _ = BBoxAssigner(num_classes=3, fluid=True).label(
        t([[0, 0, 9, 9.00001]]), gt, t([0, 1], "int32"), 0.5, 0.5
    )
    assert matched.numpy().tolist() == [0]


def test_cascade_stages_get_the_gt_boxes_first():
    rois = t([[1, 1, 5, 5], [2, 2, 6, 6], [3, 3, 7, 7]])
    gt = [t([[0, 0, 9, 9]]), t(np.zeros((0, 4)))]
    out, num = BBoxAssigner(fluid=True).with_gt_first(rois, t([2, 1], "int32"), gt)
    np.testing.assert_allclose(
        out.numpy(), [[0, 0, 9, 9], [1, 1, 5, 5], [2, 2, 6, 6], [3, 3, 7, 7]]
    )
    assert num.numpy().tolist() == [3, 1]


# ---------------------------------------------------------------- mask targets


def test_mask_targets_fluid_way():
    # gt boxes as given, and polygons that lie elsewhere (object 0's polygon is in object 1's
    # box and back): 2.x matches a RoI by gt box, fluid by the polygons' bounding box
    square = lambda x0: np.array([x0, 0, x0 + 8, 0, x0 + 8, 8, x0, 8], "float32")  # noqa: E731
    polys = [[[square(20)], [square(0)]]]
    gt = [t([[0, 0, 8, 8], [20, 0, 28, 8]])]
    roi, num = t([[0, 0, 8, 8]]), t([1], "int32")
    np.testing.assert_allclose(polygon_boxes(polys[0]), [[20, 0, 28, 8], [0, 0, 8, 8]])
    ours = MaskAssigner(4, num_classes=2)(roi, num, gt, polys).numpy()
    fluid = MaskAssigner(4, num_classes=2, fluid=True)(roi, num, gt, polys).numpy()
    assert ours.sum() == 0 and fluid.sum() == 16  # the object's own polygon fills the RoI
    assert MaskAssigner(fluid=True).conventions == {"mask_labels": "fluid"}
    # a RoI narrower than a pixel: fluid scales it as 1 px wide, 2.x as it is (>= 0.1)
    thin = np.array([0, 0, 0.5, 8], "float32")
    poly = [np.array([0, 0, 0.25, 0, 0.25, 8, 0, 8], "float32")]
    assert polygons_to_mask(poly, thin, 4, 1.0)[:, 2:].sum() == 0  # left quarter only
    assert polygons_to_mask(poly, thin, 4, 0.1)[:, :2].sum() == 8  # left half


# ---------------------------------------------------------------- configs


def _build(name, overrides=()):
    with paddle.LazyGuard():
        return ppdet.build_model(ppdet.load_config(str(REPO / "configs" / name), list(overrides)))


RCNN_V01 = {
    "rpn_target_assign",
    "rpn_straddle_thresh",
    "proposal_labels",
    "rpn_loss_beta",
    "rpn_loss_norm",
    "rcnn_loss_beta",
}


@pytest.mark.parametrize(
    "config, expected",
    [
        ("faster_rcnn_r50_fpn_1x.yml", RCNN_V01),
        ("faster_rcnn_r50_1x.yml", RCNN_V01),
        ("mask_rcnn_r50_fpn_1x.yml", RCNN_V01 | {"mask_labels"}),
        ("cascade_rcnn_r50_fpn_1x.yml", RCNN_V01),
        ("retinanet_r50_fpn_1x.yml", {"anchor_target_assign", "retina_num_pos_plus_one"}),
    ],
)
def test_v01_configs_train_with_the_conventions_they_infer_with(config, expected):
    declared = model_conventions(_build(config))
    assert {k for k in declared if k in TRAINING_CONVENTIONS} == expected
    assert declared["box_coder_plus_one"] is True  # the decoder and the training targets agree
    if "rpn_straddle_thresh" in expected:
        assert declared["rpn_straddle_thresh"] == 0.0  # v0.1's rpn_straddle_thresh
        # v0.1's losses: RPN smooth L1 sigma 3 averaged over the sampled anchors, R-CNN sigma 1
        assert declared["rpn_loss_beta"] == pytest.approx(1 / 9)
        assert declared["rpn_loss_norm"] == "sampled" and declared["rcnn_loss_beta"] == 1.0


@pytest.mark.parametrize(
    "config",
    [
        "faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yml",
        "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml",
        "retinanet/retinanet_r50_fpn_1x_coco.yml",
    ],
)
def test_2x_configs_keep_2x_targets(config):
    assert not set(model_conventions(_build(config))) & set(TRAINING_CONVENTIONS)


@pytest.mark.parametrize(
    "config", sorted(p.name for p in (REPO / "configs").glob("*_rcnn_*.yml")), ids=str
)
def test_every_v01_rcnn_config_codes_targets_as_it_decodes(config):
    """Each v0.1-path R-CNN config: the box head's training targets use the +1 coding its
    decoder uses, the RPN ignores border-crossing anchors (v0.1's 0) and both assigners run
    fluid's rules."""
    model = _build(config)
    head = model.bbox_head
    assert head.plus_one is model.bbox_post_process.decode.plus_one is True
    assert head.bbox_assigner.fluid and model.rpn_head.rpn_target_assign.fluid
    assert model.rpn_head.rpn_target_assign.straddle_thresh == 0.0
    if model.mask_head is not None:
        assert model.mask_head.mask_assigner.fluid


def test_every_declared_training_convention_is_documented():
    from ppdet.zoo.legacy_families import BEHAVIOURS

    declared = model_conventions(_build("mask_rcnn_r50_fpn_1x.yml"))
    assert set(declared) <= set(TRAINING_CONVENTIONS) | set(BEHAVIOURS)


V01_TINY = [
    "num_classes=3",
    "ResNet.depth=18",
    "ResNet.freeze_at=-1",
    "FPN.out_channel=32",
    "BBoxAssigner.batch_size_per_im=64",
]


def test_tiny_v01_faster_rcnn_fpn_trains():
    model = tiny_detector(
        str(REPO / "configs" / "faster_rcnn_r50_fpn_1x.yml"),
        [*V01_TINY, "TwoFCHead.out_channel=64"],
    )
    declared = model_conventions(model)
    assert declared["rpn_target_assign"] == "fluid" and declared["proposal_labels"] == "fluid"
    assert_loss_drops(train_steps(model, rcnn_batch(96), steps=8, lr=2e-4)["loss"])


@pytest.mark.parametrize(
    "config, extra",
    [
        ("mask_rcnn_r50_fpn_1x.yml", ["TwoFCHead.out_channel=64", "MaskFeat.out_channel=16"]),
        ("cascade_rcnn_r50_fpn_1x.yml", ["CascadeTwoFCHead.out_channel=64"]),
    ],
)
def test_tiny_v01_mask_and_cascade_losses(config, extra):
    model = tiny_detector(str(REPO / "configs" / config), [*V01_TINY, *extra])
    model.train()
    batch = rcnn_batch(96)
    batch["gt_poly"] = [
        [
            [np.array([10, 10, 50, 10, 30, 60], "float32")],
            [np.array([40, 30, 90, 30, 90, 90, 40, 90], "float32")],
        ],
        [[np.array([5, 70, 22, 50, 40, 70, 22, 90], "float32")]],
    ]
    losses = model.losses(batch)
    assert all(np.isfinite(float(v)) for v in losses.values())
    losses["loss"].backward()
