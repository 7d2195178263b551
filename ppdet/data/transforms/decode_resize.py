"""Decode an image file (ppdet/data/image_io.py), and resize a sample with its boxes.

Coordinates are continuous pixels: pixel (i, j) covers [j, j+1) x [i, i+1), a box is
x1, y1, x2, y2 with no +1. Resizing an image by (sy, sx) therefore maps a box by exactly
(sx, sy, sx, sy), which is how OpenCV maps pixel centres when it is given the output size.
"""

from __future__ import annotations

import cv2
import numpy as np

from ppdet.config.registry import register
from ppdet.data.image_io import DEFAULT_MAX_PIXELS, read_image

from .compose import BaseOperator
from .gt_fields import map_polys


def is_chw(image: np.ndarray) -> bool:
    """Whether a 3-D image is channel-first (after ``Permute``): [3, H, W] rather than [H, W, 3].

    Judged from the shape (leading 1 or 3, trailing not), so only images 1 or 3 px wide or
    high could be misread.
    """
    return image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3)


@register("transform")
class Decode(BaseOperator):
    """Read ``im_file`` into an RGB image (also for the mixup partner ``sample["mixup"]``).

    Args:
        max_pixels: refuse images with more pixels than this (width x height, read from the
            file header before anything is decoded, so a decompression bomb costs no memory).

    Requires: ``im_file`` (or an ``image`` array [H, W, 3] uint8 RGB already in the sample).
    Adds: ``image`` [H, W, 3] uint8 RGB as a photo viewer shows it (EXIF rotation applied,
    see ppdet/data/image_io.py), ``im_shape`` float32 [2] (h, w), ``scale_factor`` float32 [2] =
    (1, 1). Modifies: ``h``, ``w`` (set to the decoded size).
    Raises ImageDecodeError naming the file; the dataset decides what happens to the sample
    (another image takes its place in training, it is skipped in eval and inference).
    """

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.max_pixels = max_pixels

    def __call__(self, sample: dict) -> dict:
        image = sample.get("image")
        if not isinstance(image, np.ndarray):
            image = read_image(sample["im_file"], self.max_pixels)
        h, w = image.shape[:2]
        sample["image"] = image
        sample["h"], sample["w"] = h, w
        sample["im_shape"] = np.array([h, w], np.float32)
        sample["scale_factor"] = np.ones(2, np.float32)
        if isinstance(sample.get("mixup"), dict):
            self(sample["mixup"])
        return sample


def resize_sample(sample: dict, out_h: int, out_w: int, interp: int) -> dict:
    """Resize ``image`` (HWC, or CHW after Permute) to out_h x out_w and scale boxes (and
    ``gt_poly`` polygons) to match.

    ``im_shape`` becomes (out_h, out_w); ``scale_factor`` is multiplied by (out_h / h, out_w / w),
    so it stays resized / original over several resizes.
    """
    image = sample["image"]
    chw = is_chw(image)
    h, w = image.shape[1:] if chw else image.shape[:2]
    sy, sx = out_h / h, out_w / w
    if (out_h, out_w) != (h, w):
        if chw:
            image = cv2.resize(image.transpose(1, 2, 0), (out_w, out_h), interpolation=interp)
            image = image.reshape(out_h, out_w, -1).transpose(2, 0, 1)  # HWC -> CHW
        else:
            image = cv2.resize(image, (out_w, out_h), interpolation=interp)
        sample["image"] = image
    sample["im_shape"] = np.array([out_h, out_w], np.float32)
    old = sample.get("scale_factor", np.ones(2, np.float32))
    sample["scale_factor"] = (old * np.array([sy, sx])).astype(np.float32)
    if "gt_bbox" in sample:
        sample["gt_bbox"] = (sample["gt_bbox"] * np.array([sx, sy, sx, sy])).astype(np.float32)
    map_polys(sample, lambda xs, ys: (xs * sx, ys * sy))
    return sample


def output_size(h: int, w: int, target_size: list[int], keep_ratio: bool) -> tuple[int, int]:
    """Size (out_h, out_w) for an h x w image.

    keep_ratio=False: exactly ``target_size`` = [h, w]. keep_ratio=True: one scale for both
    sides, the largest that keeps the short side <= min(target) and the long side <= max(target).
    """
    if not keep_ratio:
        return int(target_size[0]), int(target_size[1])
    short_t, long_t = min(target_size), max(target_size)
    scale = min(short_t / min(h, w), long_t / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def as_size(target_size: int | list[int]) -> list[int]:
    """An int ``s`` means [s, s]; a list must be [h, w]."""
    if isinstance(target_size, int):
        return [target_size, target_size]
    if len(target_size) != 2:
        raise ValueError(f"target_size must be an int or [h, w], got {target_size!r}")
    return [int(t) for t in target_size]


@register("transform")
class Resize(BaseOperator):
    """Resize the image and its boxes.

    Args:
        target_size: int or [h, w] in pixels. With ``keep_ratio`` the short side is scaled to
            min(target_size) unless that makes the long side exceed max(target_size).
        keep_ratio: keep the aspect ratio (True) or stretch to exactly [h, w] (False).
        interp: OpenCV interpolation flag (0 nearest, 1 linear, 2 cubic, 3 area, 4 lanczos).

    Requires: ``image`` (HWC, or CHW after Permute). Modifies: ``image``, ``im_shape``,
    ``scale_factor`` (times resized / original), ``gt_bbox`` and ``gt_poly`` (if present).
    """

    def __init__(
        self, target_size: int | list[int], keep_ratio: bool = True, interp: int = cv2.INTER_LINEAR
    ) -> None:
        self.target_size = as_size(target_size)
        self.keep_ratio = keep_ratio
        self.interp = interp

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        h, w = image.shape[1:] if is_chw(image) else image.shape[:2]
        out_h, out_w = output_size(h, w, self.target_size, self.keep_ratio)
        return resize_sample(sample, out_h, out_w, self.interp)
