"""What every inference path shares, so they cannot drift: the preprocessing (built from one
``TestReader`` transform list with ppdet's own transform classes) and the unpacking of the model's
eval-contract outputs into per-image results.

Used by the eager ``ppdet.engine.predictor.Predictor`` (tools/infer.py, which reads the list from
the config) and the deployed ``ppdet.export.Predictor`` (which reads the same list from the
exported ``infer_cfg.yml``).

A per-image result is ``{"im_file": str | None, "im_id": int, "bbox": float32 [n, 6] (class,
score, x1, y1, x2, y2 in pixels of the original image as shown: EXIF rotation applied)}``, plus
``"mask"`` uint8 [n, H, W] (0/1, the original image's size) for mask models. ``im_id`` is the
image's position in the input list; ``im_file`` is None for an array input.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ppdet.data.errors import DataError, ImageDecodeError

logger = logging.getLogger(__name__)

ImageInput = str | os.PathLike | np.ndarray  # a file path, or an H x W x 3 BGR uint8 array
READER_KEYS = ("sample_transforms", "batch_transforms", "batch_size")  # what inference reads
MODEL_INPUTS = ("image", "im_shape", "scale_factor")  # float32 [B,3,H,W], [B,2], [B,2]


def test_reader_section(cfg: dict) -> dict:
    """The parts of ``cfg["TestReader"]`` inference uses (transforms and batch size), as plain
    data: what the exporter writes into infer_cfg.yml and ``Preprocess`` builds from."""
    section = cfg.get("TestReader") or {}
    return {k: section[k] for k in READER_KEYS if section.get(k) is not None}


class Preprocess:
    """The TestReader pipeline on images given as files or arrays, batched.

    Args:
        cfg: a config (or any dict) with a ``TestReader`` section; its sample transforms run on
            every image, then its batch transforms on each batch (e.g. ``PadBatch``).
        batch_size: images per batch (default: ``TestReader.batch_size``, else 1).
    Attributes:
        max_pixels: the ``Decode`` pixel limit (reading images for drawing uses it too).
        skipped: the files of the latest call that could not be read (one warning each).

    ``for batch, items in preprocess(images)``: ``batch`` holds the model inputs as NumPy,
    ``image`` float32 [B, 3, H, W], ``im_shape`` and ``scale_factor`` float32 [B, 2];
    ``items`` the B images' ``{"im_file", "im_id"}``.
    """

    def __init__(self, cfg: dict, batch_size: int | None = None) -> None:
        from ppdet.config.builder import create
        from ppdet.config.readers import reader_spec
        from ppdet.data.image_io import DEFAULT_MAX_PIXELS
        from ppdet.data.transforms.compose import BatchCompose, Compose

        spec = reader_spec(cfg, "TestReader")
        build = lambda ops: [  # noqa: E731
            create(op.name, op.kwargs, role=op.role, key_path=op.key_path, cfg=cfg) for op in ops
        ]
        self.sample_ops = Compose(build(spec.sample_transforms))
        self.batch_ops = BatchCompose(build(spec.batch_transforms))
        self.batch_size = int(batch_size or spec.batch_size)
        self.max_pixels = DEFAULT_MAX_PIXELS
        for op in spec.sample_transforms:
            if op.name == "Decode":
                self.max_pixels = int(op.kwargs.get("max_pixels", DEFAULT_MAX_PIXELS))
        self.skipped: list[str] = []

    def __call__(self, images: Sequence[ImageInput]) -> Iterator[tuple[dict, list[dict]]]:
        self.skipped = []
        samples: list[dict] = []
        for im_id, image in enumerate(images):
            sample = self.sample(image, im_id)
            if sample is None:
                continue
            samples.append(sample)
            if len(samples) == self.batch_size:
                yield self.collate(samples)
                samples = []
        if samples:
            yield self.collate(samples)

    def sample(self, image: ImageInput, im_id: int) -> dict | None:
        """One image through the sample transforms; None (and a warning) if it cannot be read."""
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DataError(
                    f"image {im_id}: arrays must be H x W x 3 BGR uint8, got {image.dtype} "
                    f"{list(image.shape)}"
                )
            record = {"im_file": None, "image": np.ascontiguousarray(image[:, :, ::-1])}  # RGB
        else:
            record = {"im_file": os.fspath(image)}
        record["im_id"] = np.array([im_id], np.int64)
        try:
            return self.sample_ops(record)
        except ImageDecodeError as e:
            logger.warning("%s; skipped", e)
            self.skipped.append(record["im_file"])
            return None

    def collate(self, samples: list[dict]) -> tuple[dict, list[dict]]:
        """The batch transforms, then the model inputs stacked (see the class docstring)."""
        samples = self.batch_ops(samples)
        shapes = sorted({tuple(s["image"].shape) for s in samples})
        if len(shapes) > 1 or len(shapes[0]) != 3 or shapes[0][0] != 3:
            raise DataError(
                f"TestReader: images of a batch must be [3, H, W] of one size, got {shapes}: end "
                "sample_transforms with Permute and resize to a fixed size or add PadBatch"
            )
        batch = {k: np.stack([np.asarray(s[k], np.float32) for s in samples]) for k in MODEL_INPUTS}
        items = [{"im_file": s["im_file"], "im_id": int(s["im_id"][0])} for s in samples]
        return batch, items


def original_sizes(im_shape: np.ndarray, scale_factor: np.ndarray) -> np.ndarray:
    """(h, w) of the original images, [B, 2] int: im_shape / scale_factor rounded, the same
    rule as ``ppdet.modeling.postprocess.original_size`` (which sizes the mask output)."""
    return np.floor(np.asarray(im_shape) / np.asarray(scale_factor) + 0.5).astype(np.int64)


def unpack_results(
    outputs: dict[str, Any], batch: dict[str, np.ndarray], items: list[dict]
) -> list[dict]:
    """The model's eval-contract outputs for one batch as per-image results (module docstring).

    outputs: ``bbox`` [N, 6], ``bbox_num`` [B] and optionally ``mask`` uint8 [N, H_max, W_max]
    (NumPy arrays or paddle Tensors); batch: the inputs (``im_shape``, ``scale_factor``);
    items: the batch's ``{"im_file", "im_id"}``. Masks are cropped to each original size.
    """
    from ppdet.evaluation.coco_eval import split_masks

    def as_numpy(x: Any) -> np.ndarray:
        return np.asarray(x.numpy() if hasattr(x, "numpy") else x)

    bbox = as_numpy(outputs["bbox"]).reshape(-1, 6).astype(np.float32, copy=False)
    counts = as_numpy(outputs["bbox_num"]).reshape(-1).astype(np.int64)
    if len(counts) != len(items) or counts.sum() != len(bbox):
        raise ValueError(
            f"model output: bbox_num {counts.tolist()} does not fit {len(items)} images and "
            f"{len(bbox)} bbox rows"
        )
    masks = None
    if outputs.get("mask") is not None:
        sizes = original_sizes(batch["im_shape"], batch["scale_factor"])
        masks = split_masks(outputs["mask"], counts, sizes)  # array, tensor or per-image list
    results, start = [], 0
    for b, (item, n) in enumerate(zip(items, counts.tolist())):
        result = {
            "im_file": item["im_file"],
            "im_id": item["im_id"],
            "bbox": bbox[start : start + n],
        }
        start += n
        if masks is not None:
            result["mask"] = masks[b]
        results.append(result)
    return results
