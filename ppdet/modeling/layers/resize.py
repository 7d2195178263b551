"""Resizing a feature map to the spatial size of another: how pyramid necks line up levels
whose sizes are not exactly 2x apart (odd input sizes)."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

__all__ = ["resize_to"]


def resize_to(
    x: paddle.Tensor, ref: paddle.Tensor, mode: str = "nearest", align_corners: bool = False
) -> paddle.Tensor:
    """x [B, C, h, w] resized to ref's spatial size -> [B, C, H, W] (ref: [B', C', H, W]).

    Returned unchanged when the sizes are equal (eager mode); otherwise interpolated with
    ``mode`` ("nearest" or "bilinear"; ``align_corners`` only for bilinear). A static graph
    (export) always interpolates, which is the identity for equal sizes.
    """
    if paddle.in_dynamic_mode() and list(x.shape[2:]) == list(ref.shape[2:]):
        return x
    kw = {"align_corners": align_corners} if mode == "bilinear" else {}
    return F.interpolate(x, size=paddle.shape(ref)[2:], mode=mode, **kw)
