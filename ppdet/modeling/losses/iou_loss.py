"""IoU-family box regression losses on decoded boxes: IoU, GIoU, DIoU and CIoU.

For a predicted box B and its target G (both x1y1x2y2, the same unit, e.g. pixels):

    iou:   1 - IoU
    giou:  1 - IoU + (C - U) / C                  (Rezatofighi et al. 2019)
    diou:  1 - IoU + rho^2 / c^2                  (Zheng et al. 2020)
    ciou:  1 - IoU + rho^2 / c^2 + alpha * v      (Zheng et al. 2020)

C is the area of the smallest box enclosing B and G, U the area of their union, rho the
distance between the box centres, c the diagonal of the enclosing box,
v = 4 / pi^2 * (atan(w_G / h_G) - atan(w_B / h_B))^2 and alpha = v / (1 - IoU + v), which is
treated as a constant in the gradient (as in the CIoU paper). Every loss is 0 for identical
boxes; iou saturates at 1 for disjoint boxes, giou reaches up to 2 and diou/ciou up to 2 (+1).

Degenerate boxes (zero width or height, a point, inverted corners) give finite losses and
finite gradients: widths and heights are clipped at 0, areas and squared diagonals at ``eps``
before dividing, and the aspect ratio uses w / (h + eps). The box math (IoU, GIoU,
enclosing box) is ``ppdet.ops.boxes``.
"""

from __future__ import annotations

import math

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.ops.boxes import box_giou_aligned, box_iou_aligned, enclosing_box

__all__ = ["IOU_MODES", "DIouLoss", "GIoULoss", "IoULoss", "box_iou_loss"]

IOU_MODES = ("iou", "giou", "diou", "ciou")
REDUCTIONS = ("none", "sum", "mean")


def _centre_distance_term(pred: paddle.Tensor, target: paddle.Tensor, eps: float) -> paddle.Tensor:
    """rho^2 / c^2: squared centre distance over the squared enclosing diagonal, [...]."""
    centre_p = (pred[..., :2] + pred[..., 2:]) / 2  # [..., 2]
    centre_t = (target[..., :2] + target[..., 2:]) / 2
    rho2 = ((centre_p - centre_t) ** 2).sum(axis=-1)  # [...]
    enclosing = enclosing_box(pred, target)
    c2 = ((enclosing[..., 2:] - enclosing[..., :2]) ** 2).sum(axis=-1)  # [...]
    return rho2 / c2.clip(min=eps)


def _aspect_term(pred: paddle.Tensor, target: paddle.Tensor, eps: float) -> paddle.Tensor:
    """v = 4 / pi^2 * (atan(w_t / h_t) - atan(w_p / h_p))^2, [...]."""
    wh_p = (pred[..., 2:] - pred[..., :2]).clip(min=0)  # [..., 2]
    wh_t = (target[..., 2:] - target[..., :2]).clip(min=0)
    angle_p = paddle.atan(wh_p[..., 0] / (wh_p[..., 1] + eps))
    angle_t = paddle.atan(wh_t[..., 0] / (wh_t[..., 1] + eps))
    return 4.0 / math.pi**2 * (angle_t - angle_p) ** 2


def box_iou_loss(
    pred: paddle.Tensor, target: paddle.Tensor, mode: str = "giou", eps: float = 1e-7
) -> paddle.Tensor:
    """Per-box IoU-family loss (see the module docstring for ``mode``).

    pred, target: [..., 4] x1y1x2y2 in the same unit (decoded boxes, not deltas).
    Returns [...] (no reduction, no weights).
    """
    if mode not in IOU_MODES:
        raise ValueError(f"IoU loss mode must be one of {IOU_MODES}, got {mode!r}")
    if mode == "giou":
        return 1.0 - box_giou_aligned(pred, target, eps)
    iou = box_iou_aligned(pred, target, eps)
    loss = 1.0 - iou
    if mode in ("diou", "ciou"):
        loss = loss + _centre_distance_term(pred, target, eps)
    if mode == "ciou":
        v = _aspect_term(pred, target, eps)
        with paddle.no_grad():
            alpha = v / (1.0 - iou + v + eps)
        loss = loss + alpha.detach() * v
    return loss


def _check(mode: str, reduction: str, loss_weight: float) -> None:
    if mode not in IOU_MODES:
        raise ValueError(f"IoULoss: mode must be one of {IOU_MODES}, got {mode!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"IoULoss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if loss_weight < 0:
        raise ValueError(f"IoULoss: loss_weight must be >= 0, got {loss_weight}")


@register("loss")
class IoULoss(nn.Layer):
    """``loss_weight * reduce(weight * box_iou_loss(pred, target, mode)) / normalizer``.

    Config: ``loss_bbox: {name: IoULoss, mode: giou, loss_weight: 1.0, reduction: sum}``.

    forward(pred [..., 4], target [..., 4], weight=None, normalizer=1.0):
        pred/target: decoded boxes x1y1x2y2 (same unit). weight: [...] or [..., 1] (e.g. 1 for
        positive anchors, 0 elsewhere), broadcast against the per-box loss [...].
        reduction "none" -> [...]; "sum" -> scalar sum; "mean" -> scalar mean, the weighted
        mean sum(weight * loss) / sum(weight) when weights are given (0 if they sum to 0).
        The result is then divided by ``normalizer`` (a number or scalar tensor, e.g. the
        number of positives) and multiplied by ``loss_weight``.
    """

    def __init__(
        self,
        mode: str = "giou",
        loss_weight: float = 1.0,
        reduction: str = "sum",
        eps: float = 1e-7,
    ):
        super().__init__()
        _check(mode, reduction, float(loss_weight))
        self.mode = mode
        self.loss_weight = float(loss_weight)
        self.reduction = reduction
        self.eps = float(eps)

    def forward(
        self,
        pred: paddle.Tensor,
        target: paddle.Tensor,
        weight: paddle.Tensor | None = None,
        normalizer: float | paddle.Tensor = 1.0,
    ) -> paddle.Tensor:
        if pred.shape[-1] != 4 or target.shape[-1] != 4:
            raise ValueError(
                f"{type(self).__name__}: boxes must be [..., 4] x1y1x2y2, got pred "
                f"{list(pred.shape)} and target {list(target.shape)}"
            )
        loss = box_iou_loss(pred, target, self.mode, self.eps)  # [...]
        if weight is not None:
            weight = weight.astype(loss.dtype)
            if weight.ndim == loss.ndim + 1 and weight.shape[-1] == 1:
                weight = weight.squeeze(-1)
            loss = loss * weight
        if self.reduction == "sum":
            loss = loss.sum()
        elif self.reduction == "mean":
            if weight is None:
                loss = loss.mean()
            else:
                total = (paddle.zeros_like(loss) + weight).sum()  # weight broadcast to the loss
                loss = loss.sum() / total.clip(min=self.eps)
        return self.loss_weight * loss / normalizer


@register("loss")
class GIoULoss(IoULoss):
    """PaddleDetection 2.x's ``GIoULoss`` arguments (loss_weight, eps, reduction; default
    reduction "none") on ``IoULoss`` with mode "giou"."""

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-10, reduction: str = "none"):
        super().__init__("giou", loss_weight, reduction, eps)


@register("loss")
class DIouLoss(IoULoss):
    """PaddleDetection 2.x's ``DIouLoss`` arguments on ``IoULoss``: mode "ciou" when
    ``use_complete_iou_loss`` (its default), else "diou"; reduction "mean" as in 2.x."""

    def __init__(
        self,
        loss_weight: float = 1.0,
        eps: float = 1e-10,
        use_complete_iou_loss: bool = True,
        reduction: str = "mean",
    ):
        super().__init__("ciou" if use_complete_iou_loss else "diou", loss_weight, reduction, eps)
