"""Batch-level operators: one random size per batch, image padding, gt padding."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ppdet.config.registry import register

from .compose import BatchOperator
from .decode_resize import as_size, is_chw, output_size, resize_sample

logger = logging.getLogger(__name__)

_INTERPS = (
    cv2.INTER_NEAREST,
    cv2.INTER_LINEAR,
    cv2.INTER_AREA,
    cv2.INTER_CUBIC,
    cv2.INTER_LANCZOS4,
)


@register("batch_transform")
class BatchRandomResize(BatchOperator):
    """Resize every sample of a batch to one size drawn per batch (multi-scale training).

    Args:
        target_size: the candidate sizes; each an int (square) or [h, w].
        keep_ratio: as in ``Resize`` (images of a batch then differ in size: add ``PadBatch``).
        interp: OpenCV interpolation flag used when ``random_interp`` is off.
        random_size: draw the size at random; otherwise always use the first one.
        random_interp: draw the interpolation at random per batch.

    Requires: ``image`` (HWC, or CHW after Permute). Modifies: ``image``, ``im_shape``,
    ``scale_factor``, ``gt_bbox``, ``gt_poly``.
    """

    def __init__(
        self,
        target_size: list[int | list[int]],
        keep_ratio: bool,
        interp: int = cv2.INTER_NEAREST,
        random_size: bool = True,
        random_interp: bool = False,
    ) -> None:
        if not target_size:
            raise ValueError("target_size must list at least one size")
        self.target_size = [as_size(t) for t in target_size]
        self.keep_ratio = keep_ratio
        self.interp = interp
        self.random_size = random_size
        self.random_interp = random_interp

    def __call__(self, samples: list[dict]) -> list[dict]:
        index = np.random.randint(len(self.target_size)) if self.random_size else 0
        size = self.target_size[index]
        interp = _INTERPS[np.random.randint(len(_INTERPS))] if self.random_interp else self.interp
        for sample in samples:
            image = sample["image"]
            h, w = image.shape[1:] if is_chw(image) else image.shape[:2]
            out_h, out_w = output_size(h, w, size, self.keep_ratio)
            resize_sample(sample, out_h, out_w, interp)
        return samples


@register("batch_transform")
class PadBatch(BatchOperator):
    """Zero-pad the images of a batch at the bottom/right to one size, a multiple of the stride.

    Args:
        pad_to_stride: round the padded height and width up to a multiple of this (0: no rounding).

    Requires: ``image`` [3, H, W] (after Permute). Modifies: ``image``. ``im_shape`` keeps the
    unpadded size, boxes and ``gt_poly`` are unchanged (padding is at the bottom/right).
    """

    def __init__(self, pad_to_stride: int = 0) -> None:
        self.pad_to_stride = int(pad_to_stride)

    def __call__(self, samples: list[dict]) -> list[dict]:
        for sample in samples:
            if not is_chw(sample["image"]):
                raise ValueError("PadBatch needs CHW images [3, H, W]; put Permute before it")
        max_h = max(s["image"].shape[1] for s in samples)
        max_w = max(s["image"].shape[2] for s in samples)
        stride = self.pad_to_stride
        if stride > 0:
            max_h = -(-max_h // stride) * stride
            max_w = -(-max_w // stride) * stride
        for sample in samples:
            image = sample["image"]
            c, h, w = image.shape
            if (h, w) == (max_h, max_w):
                continue
            padded = np.zeros((c, max_h, max_w), image.dtype)
            padded[:, :h, :w] = image
            sample["image"] = padded
        return samples


@register("batch_transform")
class PadGT(BatchOperator):
    """Pad the gt fields of every sample to M rows and add ``pad_gt_mask``.

    M is ``num_max_boxes`` if > 0 (extra boxes are dropped, with a warning), otherwise the
    largest box count in the batch (at least 1, so tensors are never empty).
    Fields and dtypes: ``gt_bbox`` float32 [M, 4], ``gt_class`` int32 [M, 1], ``gt_score``
    float32 [M, 1] (ones unless set by Mixup), ``is_crowd`` and ``difficult`` int32 [M, 1]
    (zeros if absent), ``pad_gt_mask`` float32 [M, 1] (1 for a real box). Padding rows are 0.
    ``gt_poly`` stays a per-sample list of the real objects (cut to M if boxes were dropped).

    Requires: ``gt_bbox``, ``gt_class``. Modifies: those. Adds: ``gt_score``, ``is_crowd``,
    ``difficult`` (if absent), ``pad_gt_mask``.
    """

    _FIELDS = (
        ("gt_bbox", 4, np.float32),
        ("gt_class", 1, np.int32),
        ("gt_score", 1, np.float32),
        ("is_crowd", 1, np.int32),
        ("difficult", 1, np.int32),
    )

    def __init__(self, num_max_boxes: int = 0) -> None:
        self.num_max_boxes = int(num_max_boxes)
        self._warned = False

    def __call__(self, samples: list[dict]) -> list[dict]:
        counts = [len(s["gt_bbox"]) for s in samples]
        m = self.num_max_boxes if self.num_max_boxes > 0 else max(1, *counts)
        if max(counts) > m and not self._warned:
            logger.warning("PadGT: a sample has %d boxes, keeping the first %d", max(counts), m)
            self._warned = True
        for sample, n in zip(samples, counts, strict=True):
            n = min(n, m)
            if "gt_score" not in sample:
                sample["gt_score"] = np.ones((n, 1), np.float32)
            for key, width, dtype in self._FIELDS:
                padded = np.zeros((m, width), dtype)
                if key in sample:
                    padded[:n] = np.asarray(sample[key][:n]).reshape(n, width)
                sample[key] = padded
            mask = np.zeros((m, 1), np.float32)
            mask[:n] = 1.0
            sample["pad_gt_mask"] = mask
            if "gt_poly" in sample:
                sample["gt_poly"] = list(sample["gt_poly"][:n])
        return samples
