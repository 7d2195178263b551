"""Paste Mask R-CNN's fixed-size box masks into the original image.

A mask [M, M] covers its box (x1, y1, x2, y2, original-image pixels) exactly: image pixel
(x, y), centre (x + 0.5, y + 0.5), reads the mask at u = (x + 0.5 - x1) / (x2 - x1) * M - 0.5
(likewise v), bilinearly, with zeros outside the mask (``grid_sample`` with
``align_corners=False`` and zero padding, as PaddleDetection 2.x pastes). A pixel is in the
object when that value is >= ``binary_thresh`` (0.5).

Bilinear interpolation is separable, so one box's pasted values are ``Wy @ mask @ Wx.T`` with
Wy [h, M], Wx [w, M] the interpolation weights; only the rows/columns near the box are
computed.
"""

from __future__ import annotations

import numpy as np

from ppdet.config.registry import register

__all__ = ["MaskPostProcess", "paste_masks"]


def _weights(lo: float, hi: float, size: int, start: int, stop: int) -> np.ndarray:
    """Bilinear weights [stop - start, size] of pixels start..stop-1 on a box [lo, hi) split
    into ``size`` cells (zero padding outside)."""
    u = (np.arange(start, stop, dtype="float64") + 0.5 - lo) / max(hi - lo, 1e-6) * size - 0.5
    i0 = np.floor(u).astype("int64")
    frac = u - i0
    w = np.zeros((stop - start, size), "float64")
    rows = np.arange(stop - start)
    for idx, wt in ((i0, 1.0 - frac), (i0 + 1, frac)):
        ok = (idx >= 0) & (idx < size)
        w[rows[ok], idx[ok]] = wt[ok]
    return w


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, height: int, width: int, binary_thresh: float = 0.5
) -> np.ndarray:
    """masks [N, M, M] probabilities, boxes [N, 4] x1y1x2y2 original-image pixels ->
    [N, height, width] uint8 0/1 (module docstring)."""
    masks = np.asarray(masks, "float64")
    out = np.zeros((len(masks), int(height), int(width)), "uint8")
    for k, (mask, box) in enumerate(zip(masks, np.asarray(boxes, "float64"))):
        x1, y1, x2, y2 = box
        m_h, m_w = mask.shape
        # beyond one mask cell past the box every value is 0
        pad_x, pad_y = (x2 - x1) / m_w + 1, (y2 - y1) / m_h + 1
        c0, c1 = max(int(np.floor(x1 - pad_x)), 0), min(int(np.ceil(x2 + pad_x)), width)
        r0, r1 = max(int(np.floor(y1 - pad_y)), 0), min(int(np.ceil(y2 + pad_y)), height)
        if c1 <= c0 or r1 <= r0:
            continue
        wy = _weights(y1, y2, m_h, r0, r1)  # [h, M]
        wx = _weights(x1, x2, m_w, c0, c1)  # [w, M]
        out[k, r0:r1, c0:c1] = (wy @ mask @ wx.T) >= binary_thresh
    return out


@register("postprocess")
class MaskPostProcess:
    """``paste_masks`` with the 2.x config key ``binary_thresh``; ``__call__(masks, boxes,
    height, width)``."""

    def __init__(self, binary_thresh: float = 0.5) -> None:
        self.binary_thresh = float(binary_thresh)

    def __call__(self, masks: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        return paste_masks(masks, boxes, height, width, self.binary_thresh)
