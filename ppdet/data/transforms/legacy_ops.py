"""Resizing as PaddleDetection v0.1's ``ResizeImage`` did, which 2.x no longer does:

- ``PILResize``: ``use_cv2: false`` (its SSD pipelines): the uint8 image is resized with
  Pillow's filters (``interp`` 1 = LANCZOS, Pillow's numbering);
- ``ScaleResize``: ``use_cv2: true`` with a ``max_size`` (its R-CNN / RetinaNet pipelines): one
  scale s for both axes, ``cv2.resize(fx=s, fy=s)``, so the output size is round(s * side) and
  ``scale_factor`` is (s, s); ``Resize(keep_ratio=true)`` instead stretches to that rounded size
  (per-axis ratios that differ from s by up to 0.5 / side).

v0.1's BGR channel order is ``Permute(to_bgr=true)``.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ppdet.config.registry import register

from .compose import BaseOperator
from .decode_resize import as_size, is_chw, output_size
from .gt_fields import map_polys

__all__ = ["PILResize", "ScaleResize"]

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
            image = np.asarray(Image.fromarray(image).resize((out_w, out_h), self.interp))
        return _scale_sample(sample, image.reshape(out_h, out_w, -1), out_h / h, out_w / w)


def _scale_sample(sample: dict, image: np.ndarray, sy: float, sx: float) -> dict:
    """Put the resized ``image`` in and scale ``im_shape``, ``scale_factor`` and the gt."""
    sample["image"] = image
    sample["im_shape"] = np.array(image.shape[:2], np.float32)
    old = sample.get("scale_factor", np.ones(2, np.float32))
    sample["scale_factor"] = (old * np.array([sy, sx])).astype(np.float32)
    if "gt_bbox" in sample:
        sample["gt_bbox"] = (sample["gt_bbox"] * np.array([sx, sy, sx, sy])).astype(np.float32)
    map_polys(sample, lambda xs, ys: (xs * sx, ys * sy))
    return sample


@register("transform")
class ScaleResize(BaseOperator):
    """v0.1's ``ResizeImage`` (``use_cv2: true``): one scale for both axes.

    s = target_size / short side, lowered to max_size / long side when round(s * long side)
    would exceed max_size (``max_size`` 0: no cap); the image is ``cv2.resize(fx=s, fy=s)``
    (output round(s * h) x round(s * w)).

    Args:
        target_size: the short side, pixels.
        max_size: the long-side cap, pixels (0: none).
        interp: OpenCV interpolation flag (1 linear, v0.1's R-CNN value).

    Requires: ``image`` [H, W, C] (uint8, or float after ``NormalizeImage`` as v0.1's R-CNN
    readers did). Modifies: ``image``, ``im_shape`` (the output size), ``scale_factor`` (times
    (s, s)), ``gt_bbox`` and ``gt_poly`` (times s).
    """

    def __init__(self, target_size: int, max_size: int = 0, interp: int = cv2.INTER_LINEAR):
        if int(target_size) <= 0 or int(max_size) < 0:
            raise ValueError(
                f"ScaleResize: target_size must be > 0 and max_size >= 0, got {target_size}, "
                f"{max_size}"
            )
        self.target_size = int(target_size)
        self.max_size = int(max_size)
        self.interp = interp

    def scale(self, h: int, w: int) -> float:
        s = self.target_size / min(h, w)
        if self.max_size and np.round(s * max(h, w)) > self.max_size:
            s = self.max_size / max(h, w)
        return s

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        if image.ndim != 3 or is_chw(image):
            raise ValueError(
                f"ScaleResize needs an [H, W, C] image: put it before Permute (got {list(image.shape)})"
            )
        s = self.scale(*image.shape[:2])
        resized = cv2.resize(image, None, None, fx=s, fy=s, interpolation=self.interp)
        return _scale_sample(sample, resized.reshape(*resized.shape[:2], -1), s, s)
