"""Paste Mask R-CNN's fixed-size box masks into the original images, in Paddle tensor ops.

A mask [M, M] covers its box (x1, y1, x2, y2, original-image pixels) exactly: image pixel
(x, y), centre (x + 0.5, y + 0.5), reads the mask at u = (x + 0.5 - x1) / (x2 - x1) * M - 0.5
(likewise v), bilinearly, with zeros outside the mask (``grid_sample`` with
``align_corners=False`` and zero padding, as PaddleDetection 2.x pastes). A pixel is in the
object when that value is >= ``binary_thresh`` (0.5).

Bilinear interpolation is separable: the pasted values of one mask are ``Wy @ mask @ Wx.T``
with Wy [H, M], Wx [W, M] the interpolation weights, ``max(0, 1 - |v - i|)`` (the tent
function: zero beyond one cell, which is the zero padding). All masks of a batch are pasted
at the batch's largest original size [H_max, W_max]; image b's rows are zero outside its own
(h_b, w_b) = ``original_size(im_shape, scale_factor)``, and a consumer crops them to that size.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.postprocess.bbox import image_of_rows, original_size

__all__ = ["MaskPostProcess", "paste_masks"]

# Eager pasting works on groups of masks of at most this many float32 output pixels (256 MB),
# so a large image with many detections does not need N * H * W floats at once.
_PIXEL_BUDGET = 1 << 26


def _tent_weights(
    lo: paddle.Tensor, hi: paddle.Tensor, cells: int, pixels: paddle.Tensor
) -> paddle.Tensor:
    """Bilinear weights [N, P, cells] of pixel centres ``pixels`` [P] (pixels + 0.5) on boxes
    [lo, hi) ([N, 1] each) split into ``cells`` cells, zero outside the box's cells."""
    extent = paddle.clip(hi - lo, min=1e-6)  # [N, 1]
    u = (pixels.unsqueeze(0) - lo) / extent * cells - 0.5  # [N, P] cell coordinate
    index = paddle.arange(cells, dtype=u.dtype)  # [cells]
    return F.relu(1.0 - (u.unsqueeze(-1) - index).abs())  # [N, P, cells]


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
    size = paddle.gather(sizes, image_of_rows(num))  # [N, 2] own image's (h, w)
    ys = paddle.arange(sizes[:, 0].max(), dtype="float32")  # [H_max]
    xs = paddle.arange(sizes[:, 1].max(), dtype="float32")  # [W_max]
    # [N, 1] each (split, not column views: Paddle 3.1 cannot unsqueeze a view of an empty tensor)
    x1, y1, x2, y2 = paddle.split(boxes, 4, axis=1)
    m_h, m_w = masks.shape[1], masks.shape[2]
    wy = _tent_weights(y1, y2, m_h, ys + 0.5)  # [N, H, M_h]
    wx = _tent_weights(x1, x2, m_w, xs + 0.5)  # [N, W, M_w]
    wy = wy * (ys.unsqueeze(0) < size[:, 0:1].astype("float32")).unsqueeze(-1).astype("float32")
    wx = wx * (xs.unsqueeze(0) < size[:, 1:2].astype("float32")).unsqueeze(-1).astype("float32")
    rows = paddle.bmm(wy, masks)  # [N, H, M_w]
    n = masks.shape[0]
    if paddle.in_dynamic_mode() and n > 0:  # eager: groups of masks, to bound the memory
        step = max(1, _PIXEL_BUDGET // max(ys.shape[0] * xs.shape[0], 1))  # masks per group
        parts = [
            paddle.bmm(rows[i : i + step], wx[i : i + step].transpose([0, 2, 1])) >= binary_thresh
            for i in range(0, n, step)
        ]  # [n_i, H, W] bool each
        inside = paddle.concat(parts)
    else:  # a static graph (sizes known at run time only) or no masks: one product
        inside = paddle.bmm(rows, wx.transpose([0, 2, 1])) >= binary_thresh  # [N, H, W]
    return inside.astype("uint8")


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
