"""IoU-family losses: hand-computed values for identical, nested, disjoint and crossed boxes,
reductions and weights, finite gradients for degenerate boxes, and a loss that falls."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from ppdet.config.builder import create
from ppdet.config.registry import lookup
from ppdet.modeling.losses import DIouLoss, GIoULoss, IoULoss, box_iou_loss


def t(x, grad=False):
    out = paddle.to_tensor(np.asarray(x, dtype=np.float32))
    out.stop_gradient = not grad
    return out


# pred, target pairs: identical, nested (16 in 100), disjoint (side by side), crossed 4x2 / 2x4
PRED = [[0, 0, 10, 10], [2, 2, 6, 6], [0, 0, 2, 2], [0, 0, 4, 2]]
TARGET = [[0, 0, 10, 10], [0, 0, 10, 10], [4, 0, 6, 2], [0, 0, 2, 4]]
# hand values: IoU, GIoU penalty (C - U) / C, DIoU penalty rho^2 / c^2
IOU = [1.0, 0.16, 0.0, 4 / 12]
GIOU_PENALTY = [0.0, 0.0, 4 / 12, 4 / 16]  # crossed: C = 4x4 = 16, U = 12
DIOU_PENALTY = [0.0, 2 / 200, 16 / 40, 2 / 32]  # centres (4,4)-(5,5); (1,1)-(5,1); (2,1)-(1,2)
_V = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(4 / 2)) ** 2  # crossed boxes' v
CIOU_EXTRA = [0.0, 0.0, 0.0, _V / (1 - 1 / 3 + _V) * _V]  # alpha * v (square pairs: v = 0)


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("iou", [1 - i for i in IOU]),
        ("giou", [1 - i + g for i, g in zip(IOU, GIOU_PENALTY)]),
        ("diou", [1 - i + d for i, d in zip(IOU, DIOU_PENALTY)]),
        ("ciou", [1 - i + d + c for i, d, c in zip(IOU, DIOU_PENALTY, CIOU_EXTRA)]),
    ],
)
def test_hand_values(mode, expected):
    loss = box_iou_loss(t(PRED), t(TARGET), mode).numpy()
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_hand_values_spelled_out():
    # the numbers of the table above, written out once: disjoint GIoU loss 4/3, nested DIoU 0.85
    giou = box_iou_loss(t(PRED), t(TARGET), "giou").numpy()
    diou = box_iou_loss(t(PRED), t(TARGET), "diou").numpy()
    ciou = box_iou_loss(t(PRED), t(TARGET), "ciou").numpy()
    np.testing.assert_allclose(giou, [0.0, 0.84, 4 / 3, 2 / 3 + 1 / 4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(diou, [0.0, 0.85, 1.4, 2 / 3 + 1 / 16], rtol=1e-5, atol=1e-6)
    # v = 4/pi^2 (atan(1/2) - atan(2))^2 = 0.1678258, alpha = v / (2/3 + v) = 0.2011113
    np.testing.assert_allclose(ciou[3], 2 / 3 + 1 / 16 + 0.2011113 * 0.1678258, rtol=1e-5)


def test_symmetric_in_pred_and_target():
    for mode in ("iou", "giou", "diou", "ciou"):
        ab = box_iou_loss(t(PRED), t(TARGET), mode).numpy()
        ba = box_iou_loss(t(TARGET), t(PRED), mode).numpy()
        np.testing.assert_allclose(ab, ba, rtol=1e-5, atol=1e-6)


def test_giou_tends_to_two_for_far_small_boxes():
    loss = box_iou_loss(t([[0, 0, 1, 1]]), t([[1000, 1000, 1001, 1001]]), "giou").item()
    assert 1.99 < loss <= 2.0


DEGENERATE = [
    # (pred, target): zero area, identical zero-area, identical points, inverted pred,
    # disjoint, nested, identical, zero-width against a box
    ([5, 5, 5, 5], [0, 0, 10, 10]),
    ([2, 2, 2, 8], [2, 2, 2, 8]),
    ([3, 3, 3, 3], [3, 3, 3, 3]),
    ([6, 6, 2, 2], [0, 0, 10, 10]),
    ([0, 0, 1, 1], [50, 50, 60, 60]),
    ([4, 4, 5, 5], [0, 0, 10, 10]),
    ([1, 2, 3, 4], [1, 2, 3, 4]),
    ([0, 0, 0, 7], [0, 0, 7, 7]),
]


@pytest.mark.parametrize("mode", ["iou", "giou", "diou", "ciou"])
def test_gradients_finite_for_degenerate_boxes(mode):
    pred = t([p for p, _ in DEGENERATE], grad=True)
    target = t([g for _, g in DEGENERATE], grad=True)
    loss = box_iou_loss(pred, target, mode)
    assert np.isfinite(loss.numpy()).all()
    loss.sum().backward()
    for g in (pred.grad, target.grad):
        assert g is not None and np.isfinite(g.numpy()).all()


def test_nested_gradient_points_outwards():
    # a box inside its target: every loss shrinks when the box grows (x1, y1 down; x2, y2 up)
    for mode in ("iou", "giou", "diou", "ciou"):
        pred = t([[4, 4, 6, 6]], grad=True)
        box_iou_loss(pred, t([[0, 0, 10, 10]]), mode).sum().backward()
        g = pred.grad.numpy()[0]
        assert g[0] > 0 and g[1] > 0 and g[2] < 0 and g[3] < 0, (mode, g)


def test_disjoint_giou_and_diou_pull_boxes_together_iou_does_not():
    target = t([[10, 0, 12, 2]])
    for mode, moves in (("iou", False), ("giou", True), ("diou", True)):
        pred = t([[0, 0, 2, 2]], grad=True)
        box_iou_loss(pred, target, mode).sum().backward()
        gx = pred.grad.numpy()[0, [0, 2]]
        assert (gx.sum() < 0) == moves, (mode, gx)  # negative grad: moving right lowers loss


def test_reductions_weights_and_normalizer():
    per_box = box_iou_loss(t(PRED), t(TARGET), "giou").numpy()
    w = np.array([1, 0, 1, 1], np.float32)
    none = IoULoss("giou", loss_weight=2.0, reduction="none")(t(PRED), t(TARGET), t(w[:, None]))
    np.testing.assert_allclose(none.numpy(), 2 * w * per_box, rtol=1e-6)
    total = IoULoss("giou", 2.0, "sum")(t(PRED), t(TARGET), t(w), normalizer=4.0)
    np.testing.assert_allclose(total.item(), 2 * (w * per_box).sum() / 4, rtol=1e-6)
    mean = IoULoss("giou", 1.0, "mean")(t(PRED), t(TARGET), t(w))
    np.testing.assert_allclose(mean.item(), (w * per_box).sum() / 3, rtol=1e-6)
    plain_mean = IoULoss("giou", 1.0, "mean")(t(PRED), t(TARGET))
    np.testing.assert_allclose(plain_mean.item(), per_box.mean(), rtol=1e-6)
    zero = IoULoss("giou", 1.0, "mean")(t(PRED), t(TARGET), t(np.zeros(4)))
    assert zero.item() == 0.0


def test_batched_shapes_and_empty():
    pred = t(np.tile(np.array(PRED, np.float32), (2, 1, 1)))  # [2, 4, 4]
    target = t(np.tile(np.array(TARGET, np.float32), (2, 1, 1)))
    assert list(IoULoss(reduction="none")(pred, target).shape) == [2, 4]
    empty = IoULoss("diou", reduction="sum")(paddle.zeros([0, 4]), paddle.zeros([0, 4]))
    assert empty.item() == 0.0


def test_registered_and_built_from_config():
    assert lookup("IoULoss", "loss") is IoULoss
    loss = create("IoULoss", {"mode": "diou", "loss_weight": 2.0}, role="loss")
    assert (loss.mode, loss.loss_weight, loss.reduction) == ("diou", 2.0, "sum")
    g = create("GIoULoss", {"loss_weight": 1.5}, role="loss")
    assert (g.mode, g.reduction, g.loss_weight) == ("giou", "none", 1.5)
    assert DIouLoss().mode == "ciou" and DIouLoss(use_complete_iou_loss=False).mode == "diou"
    assert isinstance(GIoULoss(), IoULoss)


@pytest.mark.parametrize("bad", [{"mode": "siou"}, {"reduction": "avg"}, {"loss_weight": -1}])
def test_bad_arguments(bad):
    with pytest.raises(ValueError, match="IoULoss"):
        IoULoss(**bad)
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        IoULoss()(t([[0, 0, 1]]), t([[0, 0, 1]]))


@pytest.mark.parametrize("mode", ["giou", "diou", "ciou"])
def test_gradient_descent_fits_a_disjoint_box(mode):
    # a box starting beside its target is pulled onto it: loss falls below 0.05
    pred = paddle.create_parameter([1, 4], "float32")
    pred.set_value(t([[0, 0, 4, 8]]))
    target = t([[10, 2, 16, 8]])
    opt = paddle.optimizer.Adam(learning_rate=0.2, parameters=[pred])
    losses = []
    for _ in range(200):
        loss = IoULoss(mode)(pred, target)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.05 < losses[0]
