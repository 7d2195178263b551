"""Square inputs with scale jitter: ``RandomScaledCrop`` (PaddleDetection's name and
arguments), the input pipeline of EfficientDet and of square-input RetinaNet recipes.

For an h x w image and a side ``target_dim`` (D): draw s uniformly from ``scale_range``,
resize so the long side is round(D * s) (aspect ratio kept), then take a D x D window at a
random offset where the resized image is larger than D, and pad with zeros (right / bottom)
where it is smaller. ``scale_range: [1, 1]`` is the deterministic "resize the long side to D
and pad to a square" used for evaluation.

All randomness comes from ``np.random`` (the loader seeds it per worker).
"""

from __future__ import annotations

import cv2
import numpy as np

from ppdet.config.registry import register

from .compose import BaseOperator
from .decode_resize import is_chw
from .gt_fields import POLY_KEY, clip_polygon, map_polys, polygon_area, select_gt

__all__ = ["RandomScaledCrop"]

MIN_BOX_AREA = 1.0  # square pixels: smaller boxes left after cropping are dropped (as 2.x)


@register("transform")
class RandomScaledCrop(BaseOperator):
    """Resize the long side to ``target_dim * s`` (s ~ U(scale_range)), then crop / pad to a
    ``target_dim`` square (see the module docstring).

    Args:
        target_dim: side of the square output, pixels (EfficientDet-D0: 512).
        scale_range: [low, high] of the random scale (EfficientDet: [0.1, 2.0]; [1, 1]: no
            jitter, for evaluation).
        interp: OpenCV interpolation flag (1: linear).

    Requires: ``image`` HWC (before ``Permute``; after ``NormalizeImage`` the zero padding is
    the mean colour). Modifies: ``image`` [D, D, C], ``im_shape`` (the size of the image
    content inside the square), ``scale_factor`` (times the resize scale), ``gt_bbox`` (scaled,
    shifted, clipped to the content; boxes with area <= 1 px^2 dropped with all their gt
    fields) and ``gt_poly`` (moved and clipped alike).
    """

    def __init__(
        self,
        target_dim: int = 512,
        scale_range: list[float] = (0.1, 2.0),
        interp: int = cv2.INTER_LINEAR,
    ) -> None:
        if int(target_dim) < 1:
            raise ValueError(f"RandomScaledCrop: target_dim must be >= 1, got {target_dim}")
        low, high = (float(v) for v in scale_range)
        if not 0 < low <= high:
            raise ValueError(
                f"RandomScaledCrop: scale_range must be [low, high] with 0 < low <= high, got "
                f"{list(scale_range)}"
            )
        self.target_dim = int(target_dim)
        self.scale_range = [low, high]
        self.interp = interp

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        if image.ndim != 3 or is_chw(image):
            raise ValueError(
                "RandomScaledCrop: needs an HWC image; put it before Permute in the pipeline"
            )
        dim = self.target_dim
        h, w = image.shape[:2]
        scale = dim * np.random.uniform(*self.scale_range) / max(h, w)
        rh, rw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
        off_x = int(np.random.uniform(0, rw - dim)) if rw > dim else 0
        off_y = int(np.random.uniform(0, rh - dim)) if rh > dim else 0
        resized = cv2.resize(image, (rw, rh), interpolation=self.interp)
        resized = resized.reshape(rh, rw, -1)  # cv2 drops a single channel
        ch, cw = min(dim, rh), min(dim, rw)  # content size inside the square
        canvas = np.zeros((dim, dim, resized.shape[2]), resized.dtype)
        canvas[:ch, :cw] = resized[off_y : off_y + ch, off_x : off_x + cw]
        sample["image"] = canvas
        sample["im_shape"] = np.array([ch, cw], np.float32)
        old = sample.get("scale_factor", np.ones(2, np.float32))
        sample["scale_factor"] = (old * np.array([rh / h, rw / w])).astype(np.float32)
        sx, sy = rw / w, rh / h
        if "gt_bbox" in sample:
            boxes = sample["gt_bbox"] * np.array([sx, sy, sx, sy]) - [off_x, off_y, off_x, off_y]
            boxes = np.clip(boxes, 0, [cw, ch, cw, ch]).astype(np.float32)  # [M, 4]
            sample["gt_bbox"] = boxes
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            map_polys(sample, lambda xs, ys: (xs * sx - off_x, ys * sy - off_y))
            if POLY_KEY in sample:
                sample[POLY_KEY] = [
                    [
                        q
                        for q in (clip_polygon(p, 0, 0, cw, ch) for p in obj)
                        if len(q) >= 6 and polygon_area(q) > 0
                    ]
                    for obj in sample[POLY_KEY]
                ]
            select_gt(sample, area > MIN_BOX_AREA)
        return sample
