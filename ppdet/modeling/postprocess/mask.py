"""Paste Mask R-CNN's fixed-size box masks into the original images, in Paddle tensor ops.

A mask [M, M] covers its box (x1, y1, x2, y2, original-image pixels) exactly: image pixel
(x, y), centre (x + 0.5, y + 0.5), reads the mask at u = (x + 0.5 - x1) / (x2 - x1) * M - 0.5
(likewise v), bilinearly, with zeros outside the mask (``grid_sample`` with
``align_corners=False`` and zero padding, as PaddleDetection 2.x pastes). A pixel is in the
object when that value is >= ``binary_thresh`` (0.5).

Bilinear interpolation is separable: the pasted values of one mask are ``Wy @ mask @ Wx.T``
with Wy, Wx the interpolation weights ``max(0, 1 - |v - i|)`` (the tent function: zero beyond
one cell, which is the zero padding). Only a window around each box (one mask cell and a pixel
beyond it, inside its image) can be non-zero, so the products are computed on windows (as
large as the group's largest) and the pixels found inside are set in the output.

All masks of a batch are pasted at the batch's largest original size [H_max, W_max]; image b's
rows are zero outside its own (h_b, w_b) = ``original_size(im_shape, scale_factor)``, and a
consumer crops them to that size.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.postprocess.bbox import image_of_rows, original_size

__all__ = ["MaskPostProcess", "paste_masks"]

# Eager pasting takes the masks in groups of similar window size, each group at most this many
# window pixels (float32: 64 MB), so one large box does not widen every mask's window.
_PIXEL_BUDGET = 1 << 24


def _tent_weights(
    lo: paddle.Tensor, hi: paddle.Tensor, cells: int, pixels: paddle.Tensor
) -> paddle.Tensor:
    """Bilinear weights [N, P, cells] of pixel centres ``pixels`` [N, P] on boxes [lo, hi)
    ([N, 1] each) split into ``cells`` cells, zero outside the box's cells."""
    extent = paddle.clip(hi - lo, min=1e-6)  # [N, 1]
    u = (pixels - lo) / extent * cells - 0.5  # [N, P] cell coordinate
    index = paddle.arange(cells, dtype=u.dtype)  # [cells]
    return F.relu(1.0 - (u.unsqueeze(-1) - index).abs())  # [N, P, cells]


def _window(
    lo: paddle.Tensor, hi: paddle.Tensor, cells: int, limit: paddle.Tensor
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The pixels a box [lo, hi) ([N, 1]) can touch along one axis: from one mask cell and a
    pixel before it to as far after, inside [0, limit) ([N, 1]). Returns (first pixel, length),
    [N, 1] int64 each (length >= 0)."""
    pad = (hi - lo) / cells + 1.0
    first = paddle.clip(paddle.floor(lo - pad), min=0.0)
    last = paddle.minimum(paddle.ceil(hi + pad), limit.astype(lo.dtype))
    return first.astype("int64"), paddle.clip(last - first, min=0.0).astype("int64")


def _inside_pixels(
    masks: paddle.Tensor,
    boxes: paddle.Tensor,
    limits: paddle.Tensor,
    rows: paddle.Tensor,
    shape: tuple,
    binary_thresh: float,
) -> paddle.Tensor:
    """Flat indices into [N, H, W] of the object pixels of masks ``rows`` [G] (of masks
    [N, M_h, M_w], boxes [N, 4], limits [N, 2] own image (h, w)); shape = (H, W)."""
    masks, boxes = paddle.gather(masks, rows), paddle.gather(boxes, rows)
    limits = paddle.gather(limits, rows).astype(boxes.dtype)  # [G, 2]
    # [G, 1] each, by split: Paddle 3.1 cannot unsqueeze a column view of an empty tensor
    x1, y1, x2, y2 = paddle.split(boxes, 4, axis=1)
    y0, h = _window(y1, y2, masks.shape[1], limits[:, 0:1])
    x0, w = _window(x1, x2, masks.shape[2], limits[:, 1:2])
    one = paddle.ones([1], "int64")  # (a window of at least 1, also for no masks at all)
    ys = y0 + paddle.arange(paddle.concat([h.flatten(), one]).max())  # [G, Hw] image rows
    xs = x0 + paddle.arange(paddle.concat([w.flatten(), one]).max())  # [G, Ww]
    row_ok = (ys < y0 + h).astype(boxes.dtype).unsqueeze(-1)  # [G, Hw, 1] inside the window
    col_ok = (xs < x0 + w).astype(boxes.dtype).unsqueeze(-1)
    wy = _tent_weights(y1, y2, masks.shape[1], ys.astype(boxes.dtype) + 0.5) * row_ok
    wx = _tent_weights(x1, x2, masks.shape[2], xs.astype(boxes.dtype) + 0.5) * col_ok
    values = paddle.matmul(paddle.bmm(wy, masks), wx, transpose_y=True)  # [G, Hw, Ww]
    inside = paddle.greater_equal(values, paddle.full([1], binary_thresh, values.dtype))
    height, width = shape
    start = ((rows * height).unsqueeze(1) + ys) * width  # [G, Hw] flat index of (row, x = 0)
    flat = start.unsqueeze(-1) + xs.unsqueeze(1)  # [G, Hw, Ww] flat index of each pixel
    return paddle.masked_select(flat, inside)  # [K]


def paste_masks(
    masks: paddle.Tensor,
    boxes: paddle.Tensor,
    num: paddle.Tensor,
    sizes: paddle.Tensor,
    binary_thresh: float = 0.5,
) -> paddle.Tensor:
    """masks [N, M_h, M_w] probabilities, boxes [N, 4] x1y1x2y2 original-image pixels, num [B]
    (rows per image), sizes [B, 2] int (h, w) original image sizes -> [N, H_max, W_max] uint8
    0/1 (module docstring); N = 0 gives [0, H_max, W_max]."""
    if not binary_thresh > 0:
        raise ValueError(f"paste_masks: binary_thresh must be > 0, got {binary_thresh}")
    masks = masks.astype("float32")
    boxes = boxes.astype("float32")
    sizes = sizes.astype("int64")
    limits = paddle.gather(sizes, image_of_rows(num))  # [N, 2] own image's (h, w)
    height, width = sizes[:, 0].max(), sizes[:, 1].max()
    count = paddle.shape(masks)[0]
    flat = paddle.zeros([count * height * width], "uint8")
    n = masks.shape[0]
    if not paddle.in_dynamic_mode() or n == 0:  # one group (a static graph: sizes unknown)
        groups = [paddle.arange(count, dtype="int64")]
    else:  # groups of similar window area, largest first, within the pixel budget
        x1, y1, x2, y2 = paddle.split(boxes, 4, axis=1)
        _, h = _window(y1, y2, masks.shape[1], limits[:, 0:1])
        _, w = _window(x1, x2, masks.shape[2], limits[:, 1:2])
        area = (h * w).flatten()
        order = paddle.argsort(area, descending=True)
        # the group sizes are read on the host: eager only (the window sizes fix the
        # allocations anyway); a static graph takes the single-group branch
        areas = paddle.gather(area, order).numpy()
        groups, start = [], 0
        while start < n:
            stop = start + max(1, _PIXEL_BUDGET // max(int(areas[start]), 1))
            groups.append(order[start:stop])
            start = stop
    for rows in groups:
        index = _inside_pixels(masks, boxes, limits, rows, (height, width), binary_thresh)
        # in place (no copy of the output) in eager; a static graph takes the returned value
        flat = flat.index_put_((index,), paddle.ones_like(index, "uint8"))
    return flat.reshape([count, height, width])


@register("postprocess")
class MaskPostProcess(nn.Layer):
    """Masks of the detections in original-image pixels (2.x config key ``binary_thresh``).

    forward(mask_probs [N, M, M] (each detection's own-class mask), bbox [N, 6] (class, score,
    x1, y1, x2, y2 original-image pixels), bbox_num [B], image_meta) -> [N, H_max, W_max] uint8
    0/1, rows aligned with ``bbox``; image b's rows are valid in [:h_b, :w_b] (module
    docstring).
    """

    def __init__(self, binary_thresh: float = 0.5) -> None:
        super().__init__()
        if not 0 < binary_thresh <= 1:
            raise ValueError(
                f"MaskPostProcess: binary_thresh must be in (0, 1], got {binary_thresh}"
            )
        self.binary_thresh = float(binary_thresh)

    def forward(
        self,
        mask_probs: paddle.Tensor,
        bbox: paddle.Tensor,
        bbox_num: paddle.Tensor,
        image_meta: dict[str, paddle.Tensor],
    ) -> paddle.Tensor:
        sizes = original_size(image_meta["im_shape"], image_meta["scale_factor"])  # [B, 2]
        return paste_masks(mask_probs, bbox[:, 2:], bbox_num, sizes, self.binary_thresh)
