"""YOLOv3Loss on a hand-checked case: input 64x64 (grids 2, 4, 8), 2 classes, one gt box."""

import math

import numpy as np
import paddle
import pytest

from ppdet.modeling.losses import YOLOv3Loss
from ppdet.modeling.losses.yolo_loss import build_targets

ANCHORS = [[4, 5], [8, 15], [16, 11], [15, 30], [31, 22], [29, 59], [58, 45], [78, 99], [90, 90]]
MASKS = [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
STRIDES = [32, 16, 8]
GRIDS = [(2, 2), (4, 4), (8, 8)]
NUM_CLASSES = 2
LN2 = math.log(2.0)

# gt x1y1x2y2 = (10, 20, 30, 37): w 20, h 17, centre (20, 28.5).
# wh-IoU with the anchors: [16, 11] 176/340 = 0.518 (best), [31, 22] 340/682 = 0.499,
# [15, 30] 255/535 = 0.477, ... -> anchor 2 = slot 2 of level 2 (stride 8).
# Cell: 20 / 8 = 2.5 -> column 2, tx 0.5; 28.5 / 8 = 3.5625 -> row 3, ty 0.5625.
# tw = log(20 / 16), th = log(17 / 11); weight 2 - (20 / 64) * (17 / 64).
GT = [10.0, 20.0, 30.0, 37.0]
TXY = [0.5, 0.5625]
TWH = [math.log(20 / 16), math.log(17 / 11)]
WEIGHT = 2 - (20 / 64) * (17 / 64)
SCORE = 0.8
LABEL = 1


def make_batch(boxes, labels, scores, pad):
    """One image of 64x64 with the given (padded) gt rows."""
    return {
        "image": paddle.zeros([1, 3, 64, 64]),
        "gt_bbox": paddle.to_tensor([boxes], "float32"),
        "gt_class": paddle.to_tensor([[[v] for v in labels]], "int32"),
        "gt_score": paddle.to_tensor([[[v] for v in scores]], "float32"),
        "pad_gt_mask": paddle.to_tensor([[[v] for v in pad]], "float32"),
    }


def zero_outputs():
    return [paddle.zeros([1, 3 * (5 + NUM_CLASSES), h, w]) for h, w in GRIDS]


def test_targets_by_hand():
    gt = np.array([[GT, [0, 0, 0, 0]]], np.float32)  # second row is padding
    targets = build_targets(
        gt,
        gt_class=np.array([[LABEL, 0]]),
        gt_score=np.array([[SCORE, 1.0]], np.float32),
        valid=np.array([[True, False]]),
        anchors=ANCHORS,
        anchor_masks=MASKS,
        strides=STRIDES,
        grid_shapes=GRIDS,
        input_hw=(64, 64),
        num_classes=NUM_CLASSES,
    )
    assert [len(t.index) for t in targets] == [0, 0, 1]
    level = targets[2]
    np.testing.assert_array_equal(level.index, [[0, 2, 3, 2]])  # image, slot, row, column
    np.testing.assert_allclose(level.txy, [TXY], rtol=1e-6)
    np.testing.assert_allclose(level.twh, [TWH], rtol=1e-6)
    np.testing.assert_allclose(level.weight, [WEIGHT], rtol=1e-6)
    np.testing.assert_allclose(level.score, [SCORE])
    np.testing.assert_array_equal(level.classes, [[0, 1]])  # one-hot of LABEL


def test_same_cell_later_box_wins():
    # two boxes with the same anchor and cell: the second one gives the box target and
    # score, the class target has both classes (as PaddleDetection's Gt2YoloTarget)
    gt = np.array([[GT, [11, 21, 31, 38]]], np.float32)
    targets = build_targets(
        gt, np.array([[0, 1]]), np.array([[0.3, 0.9]], np.float32), np.array([[True, True]]),
        ANCHORS, MASKS, STRIDES, GRIDS, (64, 64), NUM_CLASSES,
    )  # fmt: skip
    level = targets[2]
    assert len(level.index) == 1
    np.testing.assert_allclose(level.txy, [[21 / 8 - 2, 29.5 / 8 - 3]], rtol=1e-6)
    np.testing.assert_allclose(level.score, [0.9])
    np.testing.assert_array_equal(level.classes, [[1, 1]])


def test_loss_terms_by_hand():
    """With all logits 0 every BCE term is ln 2, so each loss is a count times ln 2."""
    batch = make_batch([GT, [0, 0, 0, 0]], [LABEL, 0], [SCORE, 1.0], [1, 0])
    losses = YOLOv3Loss()(zero_outputs(), batch, ANCHORS, MASKS)
    assert set(losses) == {"loss", "loss_xy", "loss_wh", "loss_obj", "loss_cls"}
    expected = {
        "loss_xy": 2 * LN2 * WEIGHT * SCORE,
        "loss_wh": (TWH[0] + TWH[1]) * WEIGHT * SCORE,
        # the positive (weight = gt_score) + every other prediction as background; none of
        # the anchor-sized boxes at the cell centres overlaps the gt above 0.7
        "loss_obj": SCORE * LN2 + (3 * (4 + 16 + 64) - 1) * LN2,
        "loss_cls": NUM_CLASSES * LN2 * SCORE,
    }
    expected["loss"] = sum(expected.values())
    for name, value in expected.items():
        assert float(losses[name]) == pytest.approx(value, rel=1e-5), name


def test_prediction_overlapping_a_gt_is_ignored():
    """A background prediction decoding exactly onto the gt box drops out of loss_obj."""
    outputs = zero_outputs()
    # level 1 (stride 16), slot 1 (anchor [31, 22]), cell row 1, column 1 (centre 24, 24):
    # decode to centre (20, 28.5) and size 20 x 17 = the gt box
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    field = np.zeros([5 + NUM_CLASSES], np.float32)
    field[:4] = [logit(20 / 16 - 1), logit(28.5 / 16 - 1), math.log(20 / 31), math.log(17 / 22)]
    out = outputs[1].numpy().reshape(3, 5 + NUM_CLASSES, 4, 4)  # [A, 5 + C, H, W]
    out[1, :, 1, 1] = field
    outputs[1] = paddle.to_tensor(out.reshape(1, -1, 4, 4))
    batch = make_batch([GT], [LABEL], [SCORE], [1])
    loss_obj = float(YOLOv3Loss(ignore_thresh=0.7)(outputs, batch, ANCHORS, MASKS)["loss_obj"])
    assert loss_obj == pytest.approx(SCORE * LN2 + (252 - 2) * LN2, rel=1e-5)
    # with a threshold of 1 nothing is ignored
    loss_obj = float(YOLOv3Loss(ignore_thresh=1.0)(outputs, batch, ANCHORS, MASKS)["loss_obj"])
    assert loss_obj == pytest.approx(SCORE * LN2 + (252 - 1) * LN2, rel=1e-5)


def test_label_smooth_and_no_gt():
    outputs = zero_outputs()
    out = outputs[2].numpy().reshape(3, 5 + NUM_CLASSES, 8, 8)
    out[2, 5:, 3, 2] = [1.0, -2.0]  # class logits at the positive
    outputs[2] = paddle.to_tensor(out.reshape(1, -1, 8, 8))
    batch = make_batch([GT], [LABEL], [SCORE], [1])
    bce = lambda z, t: math.log1p(math.exp(-abs(z))) + max(z, 0) - z * t  # noqa: E731
    delta = min(1 / NUM_CLASSES, 1 / 40)
    loss = YOLOv3Loss(label_smooth=True)(outputs, batch, ANCHORS, MASKS)["loss_cls"]
    expected = (bce(1.0, delta) + bce(-2.0, 1 - delta)) * SCORE
    assert float(loss) == pytest.approx(expected, rel=1e-5)

    # an image without boxes: only background objectness
    empty = make_batch([[0, 0, 0, 0]], [0], [1.0], [0])
    losses = YOLOv3Loss()(zero_outputs(), empty, ANCHORS, MASKS)
    assert float(losses["loss_obj"]) == pytest.approx(252 * LN2, rel=1e-5)
    assert float(losses["loss_xy"]) == float(losses["loss_cls"]) == 0.0
    # no gt rows at all
    empty["gt_bbox"], empty["gt_class"] = paddle.zeros([1, 0, 4]), paddle.zeros([1, 0, 1], "int32")
    empty["gt_score"], empty["pad_gt_mask"] = paddle.zeros([1, 0, 1]), paddle.zeros([1, 0, 1])
    losses = YOLOv3Loss()(zero_outputs(), empty, ANCHORS, MASKS)
    assert float(losses["loss"]) == pytest.approx(252 * LN2, rel=1e-5)
