"""Per-sample multi-scale resize (PaddleDetection's ``RandomResize``): every image draws its own
size, unlike ``BatchRandomResize`` (one size per batch)."""

from __future__ import annotations

import cv2
import numpy as np

from ppdet.config.registry import register

from .compose import BaseOperator
from .decode_resize import as_size, is_chw, output_size, resize_sample

# The interpolations ``random_interp`` draws from (PaddleDetection's list).
INTERPS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


@register("transform")
class RandomResize(BaseOperator):
    """Resize each sample (image, boxes, polygons) to a size drawn for that sample.

    Args:
        target_size: with ``random_size`` a list of candidate sizes, each an int (square) or
            [h, w], one drawn uniformly per sample; without it one size used as is.
        keep_ratio: as in ``Resize``: with it the short side goes to min(size) unless the long
            side would exceed max(size).
        interp: OpenCV interpolation flag when ``random_interp`` is off (1: linear).
        random_range: draw the short side uniformly from the integers
            [target_size[0][0], target_size[1][0]]; the long side limit is
            max(target_size[0][1], target_size[1][1] + 1) (PaddleDetection 2.6's rule).
        random_size: draw one of ``target_size`` (ignored with ``random_range``).
        random_interp: draw the interpolation per sample from nearest, linear, area, cubic,
            lanczos.

    Requires: ``image`` (HWC, or CHW after Permute). Modifies: ``image``, ``im_shape``,
    ``scale_factor``, ``gt_bbox`` and ``gt_poly`` (if present).
    """

    def __init__(
        self,
        target_size: int | list[int] | list[int | list[int]],
        keep_ratio: bool = True,
        interp: int = cv2.INTER_LINEAR,
        random_range: bool = False,
        random_size: bool = True,
        random_interp: bool = False,
    ) -> None:
        if (random_size or random_range) and not isinstance(target_size, (list, tuple)):
            raise ValueError(
                "RandomResize: target_size must be a list of sizes when random_size or "
                f"random_range is on, got {target_size!r}"
            )
        if random_range:
            if len(target_size) != 2 or not all(
                isinstance(t, (list, tuple)) and len(t) == 2 for t in target_size
            ):
                raise ValueError(
                    "RandomResize: with random_range, target_size must be "
                    f"[[min_short, long], [max_short, long]], got {target_size!r}"
                )
            self.target_size = [[int(v) for v in t] for t in target_size]
        elif random_size:
            if not target_size:
                raise ValueError("RandomResize: target_size must list at least one size")
            self.target_size = [as_size(t) for t in target_size]
        else:
            self.target_size = as_size(target_size)
        self.keep_ratio = bool(keep_ratio)
        self.interp = int(interp)
        self.random_range = bool(random_range)
        self.random_size = bool(random_size)
        self.random_interp = bool(random_interp)

    def draw_size(self) -> list[int]:
        """The target size for one sample: [a, b] (with keep_ratio, short/long side limits)."""
        if self.random_range:
            (short_lo, long_a), (short_hi, long_b) = self.target_size
            return [int(np.random.randint(short_lo, short_hi + 1)), max(long_a, long_b + 1)]
        if self.random_size:
            return self.target_size[np.random.randint(len(self.target_size))]
        return self.target_size

    def __call__(self, sample: dict) -> dict:
        size = self.draw_size()
        interp = INTERPS[np.random.randint(len(INTERPS))] if self.random_interp else self.interp
        image = sample["image"]
        h, w = image.shape[1:] if is_chw(image) else image.shape[:2]
        out_h, out_w = output_size(h, w, size, self.keep_ratio)
        return resize_sample(sample, out_h, out_w, interp)
