"""Smooth L1 (Huber with slope 1), elementwise: ``0.5 x^2 / beta`` where ``|x| < beta``, else
``|x| - 0.5 beta``; beta 0 is plain L1. Fluid's ``smooth_l1(sigma)`` is beta = 1 / sigma^2
(PaddleDetection v0.1: RPN sigma 3 -> beta 1/9, R-CNN sigma 1 -> beta 1, RetinaNet beta 0.11)."""

from __future__ import annotations

import paddle

__all__ = ["check_beta", "smooth_l1"]


def smooth_l1(diff: paddle.Tensor, beta: float) -> paddle.Tensor:
    """diff: any shape -> the same shape, the smooth L1 of each element."""
    absdiff = diff.abs()
    if beta <= 0:
        return absdiff
    return paddle.where(absdiff < beta, 0.5 * absdiff * absdiff / beta, absdiff - 0.5 * beta)


def check_beta(beta: float, key: str) -> float:
    """``beta`` as a float >= 0, else a one-line error naming the config ``key``."""
    if float(beta) < 0:
        raise ValueError(f"{key} must be >= 0 (0: L1), got {beta}")
    return float(beta)
