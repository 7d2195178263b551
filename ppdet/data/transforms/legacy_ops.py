"""``PILResize``: PaddleDetection v0.1's ``ResizeImage(use_cv2=false)`` (its SSD pipelines),
which 2.x no longer has: the uint8 image is resized with Pillow's filters (``interp`` 1 =
LANCZOS, Pillow's numbering). v0.1's BGR channel order is ``Permute(to_bgr=true)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ppdet.config.registry import register

from .compose import BaseOperator
from .decode_resize import as_size, is_chw, output_size
from .gt_fields import map_polys

__all__ = ["PILResize"]

# Pillow's resampling filters by their numbers (Image.Resampling values)
_PIL_FILTERS = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}


@register("transform")
class PILResize(BaseOperator):
    """Resize a uint8 HWC image with Pillow, and its boxes.

    Args:
        target_size: int or [h, w] in pixels (see ``Resize``).
        keep_ratio: as ``Resize``; v0.1's SSD stretches (false).
        interp: Pillow filter number: 0 nearest, 1 LANCZOS (v0.1's SSD), 2 bilinear,
            3 bicubic, 4 box, 5 hamming.

    Requires: ``image`` [H, W, C] uint8 (before ``NormalizeImage`` and ``Permute``).
    Modifies: ``image``, ``im_shape``, ``scale_factor`` (times resized / original),
    ``gt_bbox`` and ``gt_poly`` (if present), scaled by (out_w / w, out_h / h).
    """

    def __init__(
        self, target_size: int | list[int], keep_ratio: bool = False, interp: int = 1
    ) -> None:
        if interp not in _PIL_FILTERS:
            raise ValueError(
                f"PILResize: interp must be a Pillow filter number {sorted(_PIL_FILTERS)}, "
                f"got {interp!r}"
            )
        self.target_size = as_size(target_size)
        self.keep_ratio = keep_ratio
        self.interp = interp

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        if image.dtype != np.uint8 or image.ndim != 3 or is_chw(image):
            raise ValueError(
                "PILResize needs the decoded uint8 [H, W, C] image: put it before "
                f"NormalizeImage and Permute (got {image.dtype} {list(image.shape)})"
            )
        h, w = image.shape[:2]
        out_h, out_w = output_size(h, w, self.target_size, self.keep_ratio)
        if (out_h, out_w) != (h, w):
            resized = Image.fromarray(image).resize((out_w, out_h), self.interp)
            sample["image"] = np.asarray(resized).reshape(out_h, out_w, -1)
        sy, sx = out_h / h, out_w / w
        sample["im_shape"] = np.array([out_h, out_w], np.float32)
        old = sample.get("scale_factor", np.ones(2, np.float32))
        sample["scale_factor"] = (old * np.array([sy, sx])).astype(np.float32)
        if "gt_bbox" in sample:
            sample["gt_bbox"] = (sample["gt_bbox"] * np.array([sx, sy, sx, sy])).astype(np.float32)
        map_polys(sample, lambda xs, ys: (xs * sx, ys * sy))
        return sample
