"""Sigmoid focal loss (Lin et al. 2017), the classification loss of RetinaNet.

For a logit x with probability p = sigmoid(x) and a binary target t:

    p_t = p t + (1 - p)(1 - t),   alpha_t = alpha t + (1 - alpha)(1 - t)
    FL = -alpha_t (1 - p_t)^gamma log(p_t)

computed as ``alpha_t * (1 - p_t)^gamma * BCE_with_logits(x, t)`` (stable for large |x|).
``alpha < 0`` turns the alpha weighting off; ``gamma = 0`` gives (weighted) BCE.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register

__all__ = ["FocalLoss", "sigmoid_focal_loss"]


def sigmoid_focal_loss(
    logits: paddle.Tensor,
    targets: paddle.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> paddle.Tensor:
    """Focal loss of independent sigmoid classifiers.

    logits: [...] float; targets: [...] float in [0, 1], same shape (one-hot rows for
    detection: all zeros for background). reduction: "none" ([...]), "sum" or "mean" (scalar).
    """
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"sigmoid_focal_loss: reduction must be none|sum|mean, got {reduction!r}")
    targets = targets.astype(logits.dtype)
    p = F.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


@register("loss")
class FocalLoss(nn.Layer):
    """``loss_weight * sum(weight * sigmoid_focal_loss(logits, targets)) / normalizer``.

    forward(logits [...], targets [...], normalizer=1.0, weight=None) -> scalar; ``weight``
    broadcasts against the loss (e.g. [B, N, 1]: 0 for ignored anchors). Config as in
    PaddleDetection: ``loss_class: {name: FocalLoss, gamma: 2.0, alpha: 0.25, loss_weight: 1}``;
    ``use_sigmoid`` must stay true (no softmax focal loss here).
    """

    def __init__(
        self,
        use_sigmoid: bool = True,
        alpha: float = 0.25,
        gamma: float = 2.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if not use_sigmoid:
            raise ValueError("FocalLoss: use_sigmoid=false (softmax focal loss) is not supported")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.loss_weight = float(loss_weight)

    def forward(
        self,
        logits: paddle.Tensor,
        targets: paddle.Tensor,
        normalizer: float | paddle.Tensor = 1.0,
        weight: paddle.Tensor | None = None,
    ) -> paddle.Tensor:
        loss = sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, reduction="none")
        if weight is not None:
            loss = loss * weight
        return self.loss_weight * loss.sum() / normalizer
