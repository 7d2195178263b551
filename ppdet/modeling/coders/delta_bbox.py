"""Delta box coding: the (dx, dy, dw, dh) regression targets of R-CNN, RPN and RetinaNet.

A reference box ``b`` (anchor, proposal or prior: x1y1x2y2) with width ``w = x2 - x1``,
height ``h = y2 - y1`` and centre ``(x1 + 0.5 w, y1 + 0.5 h)`` and a target box ``g`` are
coded as

    dx = wx (gcx - bcx) / bw     dy = wy (gcy - bcy) / bh
    dw = ww log(gw / bw)         dh = wh log(gh / bh)

with ``weights = (wx, wy, ww, wh)``, the numbers PaddleDetection 2.x configs use:
``[1, 1, 1, 1]`` for RPN and RetinaNet, ``[10, 10, 5, 5]`` for the R-CNN box head (cascade
stages 2 and 3: ``[20, 20, 10, 10]``, ``[30, 30, 15, 15]``). SSD's variances
``[0.1, 0.1, 0.2, 0.2]`` multiply instead of divide: they are weights ``[10, 10, 5, 5]``.
Decoding clips ``dw``/``dh`` (after dividing by the weights) from above at ``clip_ratio``,
``log(1000 / 16)`` by default, so no box grows more than 62.5 times its reference; SSD decodes
without that clip (``clip_ratio=None``). Units are those of the boxes (pixels, or fractions of
the image for SSD priors). These are the numbers of 2.x's ``bbox2delta``/``delta2bbox``.

``legacy_plus_one=True`` is the fluid (PaddleDetection v0.1) pixel convention used by its
``box_coder(box_normalized=False)`` and target ops: widths are ``x2 - x1 + 1`` and a decoded
box ends at ``cx + 0.5 w - 1``. Converted v0.1 weights need it at decode time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import paddle

from ppdet.ops.boxes import clip_boxes

__all__ = ["DEFAULT_CLIP_RATIO", "decode_deltas", "encode_deltas"]

DEFAULT_CLIP_RATIO = math.log(1000.0 / 16)


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    weights = tuple(float(v) for v in weights)
    if len(weights) != 4 or any(v == 0 for v in weights):
        raise ValueError(
            f"delta_bbox: weights must be 4 non-zero numbers (wx, wy, ww, wh), got {weights}"
        )
    return weights  # type: ignore[return-value]


def _lead(dims: list) -> list:
    """Leading dimensions for a reshape: known sizes as they are (0 included), 0 ("keep") for
    the unknown ones of a static graph."""
    return [d if d is not None and d >= 0 else 0 for d in dims]


def _size_and_centre(boxes: paddle.Tensor, plus: float):
    """[..., 4] x1y1x2y2 -> (w, h, cx, cy), each [...]."""
    x1, y1, x2, y2 = paddle.unbind(boxes, axis=-1)
    w = x2 - x1 + plus
    h = y2 - y1 + plus
    return w, h, x1 + 0.5 * w, y1 + 0.5 * h


@paddle.jit.not_to_static
def encode_deltas(
    src_boxes: paddle.Tensor,
    dst_boxes: paddle.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    legacy_plus_one: bool = False,
) -> paddle.Tensor:
    """Deltas that move ``src_boxes`` onto ``dst_boxes``.

    src_boxes: [..., 4] x1y1x2y2 reference boxes (anchors, proposals), positive size.
    dst_boxes: [..., 4] x1y1x2y2 targets; the leading dimensions broadcast.
    weights: (wx, wy, ww, wh), see the module docstring.
    legacy_plus_one: fluid's +1 width convention (exact inverse of the legacy decode).
    Returns [..., 4] (dx, dy, dw, dh), dimensionless. N = 0 gives [0, 4].
    """
    wx, wy, ww, wh = _check_weights(weights)
    plus = 1.0 if legacy_plus_one else 0.0
    sw, sh, scx, scy = _size_and_centre(src_boxes, plus)  # [...] each
    dw_, dh_, dcx, dcy = _size_and_centre(dst_boxes, plus)
    dx = wx * (dcx - scx) / sw
    dy = wy * (dcy - scy) / sh
    dw = ww * paddle.log(dw_ / sw)
    dh = wh * paddle.log(dh_ / sh)
    return paddle.stack([dx, dy, dw, dh], axis=-1)


@paddle.jit.not_to_static
def decode_deltas(
    deltas: paddle.Tensor,
    boxes: paddle.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    max_shape: Sequence[float] | paddle.Tensor | None = None,
    clip_ratio: float | None = DEFAULT_CLIP_RATIO,
    legacy_plus_one: bool = False,
) -> paddle.Tensor:
    """Apply deltas to reference boxes.

    deltas: [..., 4k] (dx, dy, dw, dh) groups; k > 1 is class-specific regression laid out
        class-major (output j = 4 * class + coordinate), as the R-CNN box head predicts it.
    boxes: [..., 4] x1y1x2y2 reference boxes; their leading dimensions broadcast with the
        deltas' (each reference box serves all k groups of its row).
    weights: (wx, wy, ww, wh), see the module docstring.
    max_shape: optional (height, width) to clip the result to ``[0, w] x [0, h]``: two numbers,
        or a tensor [..., 2] whose leading dimensions broadcast against ``boxes[..., 0]``
        (e.g. [B, 1, 2] for boxes [B, N, 4]). For the legacy convention pass (h - 1, w - 1).
    clip_ratio: upper bound on dw and dh after dividing by the weights; None for no clip.
    legacy_plus_one: fluid's +1 width convention (see the module docstring).
    Returns [..., 4k] x1y1x2y2 boxes, the layout of ``deltas`` (reshape to [..., k, 4] for
    per-class boxes). An empty input gives an empty output.
    """
    wx, wy, ww, wh = _check_weights(weights)
    plus = 1.0 if legacy_plus_one else 0.0
    last = deltas.shape[-1]
    if last is None or last < 0 or last % 4 != 0:
        raise ValueError(
            f"decode_deltas: the last dimension of deltas must be a multiple of 4, got {last}"
        )
    k = last // 4
    d = paddle.reshape(deltas, _lead(deltas.shape[:-1]) + [k, 4])  # [..., k, 4]
    w, h, cx, cy = _size_and_centre(boxes.unsqueeze(-2), plus)  # [..., 1] each
    dx = d[..., 0] / wx  # [..., k]
    dy = d[..., 1] / wy
    dw = d[..., 2] / ww
    dh = d[..., 3] / wh
    if clip_ratio is not None:
        dw = paddle.clip(dw, max=clip_ratio)
        dh = paddle.clip(dh, max=clip_ratio)
    pcx = dx * w + cx
    pcy = dy * h + cy
    pw = paddle.exp(dw) * w
    ph = paddle.exp(dh) * h
    out = paddle.stack(
        [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw - plus, pcy + 0.5 * ph - plus], axis=-1
    )  # [..., k, 4]
    if max_shape is not None:
        if isinstance(max_shape, (list, tuple)):
            height, width = (float(v) for v in max_shape)
        else:  # a tensor [..., 2]
            height = max_shape[..., 0].astype(out.dtype).unsqueeze(-1)  # [..., 1] vs [..., k]
            width = max_shape[..., 1].astype(out.dtype).unsqueeze(-1)
        out = clip_boxes(out, height, width)
    return paddle.reshape(out, _lead(out.shape[:-2]) + [last])  # [..., 4k]
