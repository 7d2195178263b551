"""Build datasets and paddle DataLoaders from the config's dataset and reader sections.

``TrainDataset: {name: COCODataSet, dataset_dir: ..., ...}`` gives the dataset; ``TrainReader``
gives the transforms and batching. Both sections are checked by their schema in
ppdet/config/readers.py (the same check ``load_config`` runs), then built here.

Unreadable images never end a run: the dataset replaces (train) or leaves out (eval/test) the
sample, and ``DetDataLoader`` warns once per file in the main process and keeps count
(``loader.skipped``, ``loader.skipped_in_pass``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import paddle
import paddle.distributed as dist

from ppdet.config.builder import create
from ppdet.config.errors import ConfigError
from ppdet.config.loader import source_of
from ppdet.config.readers import DATASETS, MODES, READERS, OpSpec, dataset_spec, reader_spec
from ppdet.config.registry import lookup

from .datasets.base import (
    ERROR_KEY,
    SEED_KEY,
    SKIPPED_KEY,
    DetDataset,
    how_to_get,
    is_placeholder,
    skip_message,
)
from .errors import DataNotFoundError, DataPipelineError, exception_text
from .sampler import EvalBatchSampler, TrainBatchSampler, derive_seed
from .transforms.batch_ops import PadGT
from .transforms.compose import BatchCompose, Compose
from .transforms.decode_resize import is_chw

logger = logging.getLogger(__name__)

# Batch fields of docs/contracts.md and their dtypes; other sample keys are not batched.
BATCH_FIELDS: dict[str, type] = {
    "image": np.float32,  # [B, 3, H, W]
    "im_shape": np.float32,  # [B, 2]
    "scale_factor": np.float32,  # [B, 2]
    "im_id": np.int64,  # [B, 1]
    "gt_bbox": np.float32,  # [B, M, 4]
    "gt_class": np.int32,  # [B, M, 1]
    "gt_score": np.float32,  # [B, M, 1]
    "pad_gt_mask": np.float32,  # [B, M, 1]
    "is_crowd": np.int32,  # [B, M, 1]
    "difficult": np.int32,  # [B, M, 1]
}
# ``gt_poly`` (a list of B per-image polygon lists) is not a tensor: paddle's DataLoader would turn
# every polygon into a Tensor, so Collate pickles it into a uint8 array under this key and
# DetDataLoader turns it back into the list (numpy polygons) under ``gt_poly``.
PACKED_POLY_KEY = "__gt_poly__"


def pack_polys(polys: list) -> np.ndarray:
    """A batch's ``gt_poly`` list as a uint8 array (paddle's loader only moves arrays)."""
    return np.frombuffer(pickle.dumps(polys, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)


def unpack_polys(packed: Any) -> list:
    """The list packed by ``pack_polys`` (from a uint8 numpy array or paddle Tensor)."""
    data = packed.numpy() if hasattr(packed, "numpy") else np.asarray(packed)
    return pickle.loads(np.ascontiguousarray(data, np.uint8).tobytes())  # our own worker's bytes


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'train', 'eval' or 'test', got {mode!r}")


def build_dataset(cfg: dict, mode: str) -> DetDataset:
    """The dataset of ``TrainDataset``/``EvalDataset``/``TestDataset`` for mode train/eval/test.

    In train mode crowd boxes are left out of the samples (unless ``drop_crowd`` is set) and
    unreadable images are replaced by other samples. A missing annotation file or image folder
    is a DataNotFoundError naming the section, the file and how to get the dataset.
    """
    _check_mode(mode)
    name = DATASETS[mode]
    section = cfg.get(name)
    if isinstance(section, DetDataset):
        dataset = section
    else:
        spec = dataset_spec(cfg, name)
        if spec is None:
            raise ConfigError(f"{source_of(cfg, name)}: {name}: missing (needed in {mode} mode)")
        try:
            dataset = create(spec.name, spec.kwargs, role="dataset", key_path=name, cfg=cfg)
        except DataNotFoundError as e:
            raise DataNotFoundError(f"{source_of(cfg, name)}: {name}: {e}") from None
    dataset.set_mode(mode)
    return dataset


def require_annotations(cfg: dict, mode: str) -> None:
    """Fail early, before a model is built or weights are downloaded, when the annotation file
    of the ``mode`` dataset is missing: DataNotFoundError naming the config file, the section,
    the file and how to get the dataset (the dataset itself checks everything when built)."""
    _check_mode(mode)
    name = DATASETS[mode]
    spec = dataset_spec(cfg, name)
    if spec is None or not spec.kwargs.get("anno_path"):
        return
    path = os.path.join(str(spec.kwargs.get("dataset_dir") or ""), str(spec.kwargs["anno_path"]))
    if not os.path.isfile(path):
        kind = getattr(lookup(spec.name, "dataset"), "kind", None)
        raise DataNotFoundError(
            f"{source_of(cfg, name)}: {name}: annotation file not found: {path}"
            f"{how_to_get(path, kind)}"
        )


def _build_ops(cfg: dict, ops: tuple[OpSpec, ...]) -> list[Callable]:
    return [create(op.name, op.kwargs, role=op.role, key_path=op.key_path, cfg=cfg) for op in ops]


def _encode_skipped(skipped: list) -> np.ndarray:
    """[(path, reason), ...] as a uint8 array (paddle's loader only moves arrays)."""
    return np.frombuffer(json.dumps(skipped).encode(), np.uint8)


def _decode_skipped(data: Any) -> list[tuple[str, str]]:
    array = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    return [tuple(item) for item in json.loads(np.ascontiguousarray(array, np.uint8).tobytes())]


class Collate:
    """Batch transforms, then one stacked numpy array per contract field (see BATCH_FIELDS).

    Ground truth that no ``PadGT`` padded yet is padded here, so a batch always has
    ``gt_bbox``/``gt_class``/``gt_score``/``pad_gt_mask`` of one length M. ``gt_poly`` (when the
    samples have it) stays a Python list of B per-image lists (``_collate``); ``__call__`` packs
    it for paddle's loader (``PACKED_POLY_KEY``), ``DetDataLoader`` unpacks it. An exception (in a
    sample or here) becomes a batch ``{ERROR_KEY: text as uint8}`` that ``DetDataLoader`` raises.
    Placeholders of skipped images (eval/test) are left out of the batch; every skipped image
    travels as ``SKIPPED_KEY`` (json as uint8), also in a batch that has nothing else. When
    the samples carry their seeds (``SEED_KEY``), the batch transforms run with Python's and
    NumPy's generators seeded from them (the same batch gets the same random resize).
    """

    def __init__(self, batch_transform: Callable[[list[dict]], list[dict]]) -> None:
        self.batch_transform = batch_transform

    def __call__(self, samples: list[dict]) -> dict[str, np.ndarray]:
        errors = [s[ERROR_KEY] for s in samples if ERROR_KEY in s]
        if errors:
            return {ERROR_KEY: np.frombuffer(errors[0].encode(), np.uint8)}
        skipped = [item for s in samples for item in s.get(SKIPPED_KEY, ())]
        seeds = [s.pop(SEED_KEY) for s in samples if SEED_KEY in s]
        samples = [s for s in samples if not is_placeholder(s)]
        for s in samples:
            s.pop(SKIPPED_KEY, None)
        if seeds:  # the batch transforms' randomness: a function of the samples'
            seed = derive_seed(*seeds)
            random.seed(seed)
            np.random.seed(seed)
        batch: dict[str, Any] = {}
        if samples:
            try:
                batch = self._collate(samples)
            except Exception as e:
                return {ERROR_KEY: np.frombuffer(exception_text(e).encode(), np.uint8)}
            if "gt_poly" in batch:
                batch[PACKED_POLY_KEY] = pack_polys(batch.pop("gt_poly"))
        if skipped:
            batch[SKIPPED_KEY] = _encode_skipped(skipped)
        return batch

    def _collate(self, samples: list[dict]) -> dict[str, Any]:
        samples = self.batch_transform(samples)
        if "gt_bbox" in samples[0] and "pad_gt_mask" not in samples[0]:
            samples = PadGT()(samples)
        shapes = {tuple(s["image"].shape) for s in samples}
        if not all(is_chw(s["image"]) for s in samples):
            raise ValueError(
                "batch images must be CHW [3, H, W]: end sample_transforms with Permute"
            )
        if len(shapes) > 1:
            raise ValueError(
                f"images of a batch differ in size {sorted(shapes)}: resize to a fixed size, "
                "or add PadBatch to batch_transforms"
            )
        batch: dict[str, Any] = {
            key: np.stack([np.asarray(s[key], dtype) for s in samples])
            for key, dtype in BATCH_FIELDS.items()
            if key in samples[0]
        }
        if all("gt_poly" in s for s in samples):
            batch["gt_poly"] = [
                [[np.asarray(p, np.float32).reshape(-1) for p in obj] for obj in s["gt_poly"]]
                for s in samples
            ]
        return batch


class DetDataLoader(paddle.io.DataLoader):
    """paddle.io.DataLoader that raises DataPipelineError in the loop when loading a batch
    failed, instead of waiting forever: one line for a DataError, the original traceback after
    the first line for other exceptions. A batch's ``gt_poly`` comes out as a list of B lists
    (objects) of lists of float32 [2K] numpy arrays.

    Images that could not be read are reported here, in the main process: one warning per file
    (``skipped``: path -> reason, over the loader's life), and ``skipped_in_pass`` lists those
    of the latest pass. In eval mode a pass that skipped images ends with a count (they count
    as images without detections: their ground truth is missed). A batch whose images were all
    skipped is not yielded.
    """

    def __init__(self, *args: Any, mode: str = "train", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.skipped: dict[str, str] = {}
        self.skipped_in_pass: list[str] = []

    def __iter__(self) -> Iterator[dict]:  # type: ignore[override]
        self.skipped_in_pass = []
        for batch in super().__iter__():
            if ERROR_KEY in batch:
                text = batch[ERROR_KEY].numpy().tobytes().decode(errors="replace")
                lines = text.splitlines()
                if len(lines) > 1:  # a traceback: its last line first, then the whole
                    text = f"{lines[-1]}\n{text}"
                raise DataPipelineError(f"loading a batch failed: {text}")
            if SKIPPED_KEY in batch:
                self._report(_decode_skipped(batch.pop(SKIPPED_KEY)))
            if "image" not in batch:
                continue  # every image of this batch was skipped
            if PACKED_POLY_KEY in batch:
                batch["gt_poly"] = unpack_polys(batch.pop(PACKED_POLY_KEY))
            yield batch
        if self.skipped_in_pass and self.mode == "eval":
            logger.warning(
                "eval: %d of %d images could not be read and were skipped (see above); "
                "they count as images without detections",
                len(self.skipped_in_pass),
                len(self.dataset),
            )

    def _report(self, skipped: list[tuple[str, str]]) -> None:
        for path, reason in skipped:
            self.skipped_in_pass.append(path)
            if path not in self.skipped:
                self.skipped[path] = reason
                logger.warning(skip_message(path, reason, self.mode))


def build_loader(
    cfg: dict,
    mode: str,
    dataset: DetDataset,
    distributed: bool = False,
    accumulate_steps: int = 1,
) -> DetDataLoader:
    """A DataLoader over ``dataset`` with the reader section of ``mode`` (train/eval/test).

    Each batch is a dict of paddle Tensors as in docs/contracts.md; an exception while loading
    a batch is raised in the loop as DataPipelineError. Batches come from the samplers of
    ``data/sampler.py``: in train mode ``TrainBatchSampler`` (``accumulate_steps``
    micro-batches per step; with ``distributed`` this process's share of each global batch of
    batch_size x processes x accumulate_steps images), in eval/test mode ``EvalBatchSampler``
    (with ``distributed`` every world_size-th batch of the single-process order). Every
    sample's randomness is seeded from the config's ``seed`` (default 0), the epoch and the
    sample's index, and each batch's from its samples' seeds (``DetDataset.set_seed``).
    Call ``set_loader_epoch(loader, epoch)`` at the start of every epoch.
    """
    _check_mode(mode)
    spec = reader_spec(cfg, READERS[mode])
    sample_ops = _build_ops(cfg, spec.sample_transforms)
    batch_ops = _build_ops(cfg, spec.batch_transforms)
    mixup = mode == "train" and any(op.name == "Mixup" for op in spec.sample_transforms)
    dataset.set_transform(Compose(sample_ops), mixup=mixup, mixup_epoch=spec.mixup_epoch)
    dataset.defer_errors = True
    seed = int(cfg.get("seed") or 0)
    dataset.set_seed(seed)
    world_size, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
    shuffle = mode == "train" if spec.shuffle is None else spec.shuffle
    if mode == "train" or shuffle:
        landscape = None
        if mode == "train" and spec.aspect_ratio_grouping:
            landscape = [r.get("w", 1) >= r.get("h", 1) for r in dataset.records]
        sampler: TrainBatchSampler | EvalBatchSampler = TrainBatchSampler(
            len(dataset),
            spec.batch_size,
            world_size=world_size,
            rank=rank,
            accumulate_steps=accumulate_steps if mode == "train" else 1,
            shuffle=shuffle,
            drop_last=spec.drop_last,
            seed=seed,
            landscape=landscape,
        )
    else:
        sampler = EvalBatchSampler(len(dataset), spec.batch_size, world_size=world_size, rank=rank)
    return DetDataLoader(
        dataset,
        mode=mode,
        batch_sampler=sampler,
        collate_fn=Collate(BatchCompose(batch_ops)),
        num_workers=spec.num_workers,
        use_shared_memory=spec.use_shared_memory,
        return_list=True,
    )


def set_loader_epoch(loader: paddle.io.DataLoader, epoch: int, start: int = 0) -> None:
    """Tell the dataset (mixup schedule, sample seeds) and the train sampler (order) the
    epoch; the next pass starts at the epoch's global batch ``start`` (resume mid-epoch)."""
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    if isinstance(loader.batch_sampler, TrainBatchSampler):
        loader.batch_sampler.set_epoch(epoch, start)
    elif start:
        raise ValueError("only a train loader can start mid-epoch")
