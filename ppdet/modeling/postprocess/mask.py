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

``paste="v0.1"`` is PaddleDetection v0.1's ``mask2out`` (fluid-era convention ``mask_paste``),
for converted v0.1 weights: the mask gets a 1-pixel zero border ((M + 2) x (M + 2)), its box
is expanded about its centre by (M + 2) / M and truncated toward zero to integers x1..x2,
y1..y2 (inclusive), the bordered mask resized to (x2 - x1 + 1) x (y2 - y1 + 1) as OpenCV's
bilinear ``resize`` does (sample at (i + 0.5) S / n - 0.5, clamped to the mask) and a pixel
is in the object when that value is > ``binary_thresh`` (strictly). The same separable
weights, computed on the box's own pixels.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.postprocess.bbox import image_of_rows, original_size

__all__ = ["PASTES", "MaskPostProcess", "paste_masks"]

PASTES = ("2.x", "v0.1")

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


def _v01_box(boxes: paddle.Tensor, cells: int) -> paddle.Tensor:
    """v0.1's pixel box of each mask: boxes [N, 4] -> [N, 4] float (integral values) x1, y1,
    x2, y2 inclusive, the box expanded by (cells + 2) / cells about its centre, truncated."""
    scale = (cells + 2.0) / cells
    x1, y1, x2, y2 = paddle.split(boxes, 4, axis=1)
    cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
    hw, hh = (x2 - x1) * 0.5 * scale, (y2 - y1) * 0.5 * scale
    return paddle.trunc(paddle.concat([cx - hw, cy - hh, cx + hw, cy + hh], axis=1))


def _v01_window(
    lo: paddle.Tensor, hi: paddle.Tensor, limit: paddle.Tensor
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """v0.1's pixels lo..hi (inclusive, [N, 1] integral floats) inside [0, limit): (first
    pixel, length), [N, 1] int64 each."""
    limit = limit.astype(lo.dtype)
    first = paddle.minimum(paddle.clip(lo, min=0.0), limit)
    last = paddle.minimum(paddle.clip(hi + 1.0, min=0.0), limit)
    return first.astype("int64"), paddle.clip(last - first, min=0.0).astype("int64")


def _cv2_weights(
    lo: paddle.Tensor, hi: paddle.Tensor, cells: int, pixels: paddle.Tensor
) -> paddle.Tensor:
    """OpenCV bilinear resize weights [N, P, cells] of image pixels ``pixels`` [N, P] over
    the mask cells, for a mask with a zero border (cells + 2 samples) resized to the pixels
    lo..hi ([N, 1], n = max(hi - lo + 1, 1)); the border samples are dropped (they are 0)."""
    size = cells + 2
    n = paddle.clip(hi - lo + 1.0, min=1.0)  # [N, 1]
    u = (pixels - lo + 0.5) * (size / n) - 0.5  # [N, P] sample coordinate, bordered mask
    u = paddle.clip(u, 0.0, size - 1.0)
    index = paddle.arange(1, cells + 1, dtype=u.dtype)  # the mask's cells in the bordered one
    return F.relu(1.0 - (u.unsqueeze(-1) - index).abs())  # [N, P, cells]


def _inside_pixels_v01(
    masks: paddle.Tensor,
    boxes: paddle.Tensor,
    limits: paddle.Tensor,
    rows: paddle.Tensor,
    shape: tuple,
    binary_thresh: float,
) -> paddle.Tensor:
    """As ``_inside_pixels`` with v0.1's paste (module docstring)."""
    masks, boxes = paddle.gather(masks, rows), paddle.gather(boxes, rows)
    limits = paddle.gather(limits, rows).astype(boxes.dtype)  # [G, 2]
    x1, y1, x2, y2 = paddle.split(_v01_box(boxes, masks.shape[1]), 4, axis=1)
    y0, h = _v01_window(y1, y2, limits[:, 0:1])
    x0, w = _v01_window(x1, x2, limits[:, 1:2])
    one = paddle.ones([1], "int64")
    ys = y0 + paddle.arange(paddle.concat([h.flatten(), one]).max())  # [G, Hw]
    xs = x0 + paddle.arange(paddle.concat([w.flatten(), one]).max())  # [G, Ww]
    row_ok = (ys < y0 + h).astype(boxes.dtype).unsqueeze(-1)  # [G, Hw, 1]
    col_ok = (xs < x0 + w).astype(boxes.dtype).unsqueeze(-1)
    wy = _cv2_weights(y1, y2, masks.shape[1], ys.astype(boxes.dtype)) * row_ok
    wx = _cv2_weights(x1, x2, masks.shape[2], xs.astype(boxes.dtype)) * col_ok
    values = paddle.matmul(paddle.bmm(wy, masks), wx, transpose_y=True)  # [G, Hw, Ww]
    inside = paddle.greater_than(values, paddle.full([1], binary_thresh, values.dtype))
    height, width = shape
    start = ((rows * height).unsqueeze(1) + ys) * width  # [G, Hw]
    flat = start.unsqueeze(-1) + xs.unsqueeze(1)  # [G, Hw, Ww]
    return paddle.masked_select(flat, inside)  # [K]


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
    paste: str = "2.x",
) -> paddle.Tensor:
    """masks [N, M_h, M_w] probabilities, boxes [N, 4] x1y1x2y2 original-image pixels, num [B]
    (rows per image), sizes [B, 2] int (h, w) original image sizes -> [N, H_max, W_max] uint8
    0/1 (module docstring; ``paste``: "2.x" or "v0.1"); N = 0 gives [0, H_max, W_max]."""
    if not binary_thresh > 0:
        raise ValueError(f"paste_masks: binary_thresh must be > 0, got {binary_thresh}")
    if paste not in PASTES:
        raise ValueError(f"paste_masks: paste must be one of {', '.join(PASTES)}, got {paste!r}")
    v01 = paste == "v0.1"
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
        if v01:
            x1, y1, x2, y2 = paddle.split(_v01_box(boxes, masks.shape[1]), 4, axis=1)
            _, h = _v01_window(y1, y2, limits[:, 0:1])
            _, w = _v01_window(x1, x2, limits[:, 1:2])
        else:
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
    inside_pixels = _inside_pixels_v01 if v01 else _inside_pixels
    for rows in groups:
        index = inside_pixels(masks, boxes, limits, rows, (height, width), binary_thresh)
        # in place (no copy of the output) in eager; a static graph takes the returned value
        flat = flat.index_put_((index,), paddle.ones_like(index, "uint8"))
    return flat.reshape([count, height, width])


@register("postprocess")
class MaskPostProcess(nn.Layer):
    """Masks of the detections in original-image pixels (2.x config key ``binary_thresh``).

    forward(mask_probs [N, M, M] (each detection's own-class mask), bbox [N, 6] (class, score,
    x1, y1, x2, y2 original-image pixels), bbox_num [B], image_meta) -> [N, H_max, W_max] uint8
    0/1, rows aligned with ``bbox``; image b's rows are valid in [:h_b, :w_b] (module
    docstring). ``paste``: "2.x" (grid_sample) or "v0.1" (v0.1's ``mask2out``).
    """

    def __init__(self, binary_thresh: float = 0.5, paste: str = "2.x") -> None:
        super().__init__()
        if paste not in PASTES:
            raise ValueError(
                f"MaskPostProcess: paste must be one of {', '.join(PASTES)}, got {paste!r}"
            )
        self.paste = paste
        self.conventions = {"mask_paste": "v0.1"} if paste == "v0.1" else {}
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
        return paste_masks(mask_probs, bbox[:, 2:], bbox_num, sizes, self.binary_thresh, self.paste)
