"""Build datasets and paddle DataLoaders from the config's dataset and reader sections.

``TrainDataset: {name: COCODataSet, dataset_dir: ..., ...}`` gives the dataset;
``TrainReader`` gives the transforms and batching:

    TrainReader:
      sample_transforms: [{Decode: {}}, {RandomFlip: {prob: 0.5}}, ...]
      batch_transforms: [{BatchRandomResize: {...}}, {PadGT: {}}]
      batch_size: 8
      shuffle: true        # default: true in train mode
      drop_last: true      # default: false
      num_workers: 2       # default: 0 (load in the main process)
      mixup_epoch: 200     # Mixup while epoch < mixup_epoch; -1 (default): every epoch
      use_shared_memory: true
"""

from __future__ import annotations

import difflib
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import paddle

from ppdet.config.builder import create
from ppdet.config.errors import ConfigError
from ppdet.config.registry import lookup
from ppdet.config.validate import READER_KEYS as READER_KEY_TYPES

from .datasets.base import ERROR_KEY, DetDataset
from .errors import DataPipelineError, exception_text
from .transforms.augment import Mixup
from .transforms.batch_ops import PadGT
from .transforms.compose import BatchCompose, Compose
from .transforms.decode_resize import Decode, is_chw

DATASET_SECTIONS = {"train": "TrainDataset", "eval": "EvalDataset", "test": "TestDataset"}
READER_SECTIONS = {"train": "TrainReader", "eval": "EvalReader", "test": "TestReader"}
READER_KEYS = tuple(READER_KEY_TYPES)  # one list, shared with config validation

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


def _source(cfg: dict, key: str) -> str:
    return cfg.source_of(key) if hasattr(cfg, "source_of") else "config"


def _check_mode(mode: str) -> None:
    if mode not in DATASET_SECTIONS:
        raise ValueError(f"mode must be 'train', 'eval' or 'test', got {mode!r}")


def build_dataset(cfg: dict, mode: str) -> DetDataset:
    """The dataset of ``TrainDataset``/``EvalDataset``/``TestDataset`` for mode train/eval/test.

    In train mode crowd boxes are left out of the samples (unless ``drop_crowd`` is set) and
    unreadable images are replaced by other samples.
    """
    _check_mode(mode)
    name = DATASET_SECTIONS[mode]
    section = cfg.get(name)
    if isinstance(section, DetDataset):
        dataset = section
    else:
        if not isinstance(section, dict) or not section.get("name"):
            what = "missing" if section is None else "needs 'name' (e.g. COCODataSet)"
            raise ConfigError(f"{_source(cfg, name)}: {name}: {what} (needed in {mode} mode)")
        kwargs = {k: v for k, v in section.items() if k != "name"}
        dataset = create(section["name"], kwargs, role="dataset", key_path=name, cfg=cfg)
    dataset.set_mode(mode)
    return dataset


def _role_of(name: str, roles: tuple[str, ...], where: str) -> str:
    for role in roles:
        try:
            lookup(name, role)
            return role
        except KeyError:
            pass
    try:
        lookup(name, roles[0])
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from None
    raise AssertionError("unreachable")


def _build_ops(cfg: dict, reader: str, key: str, roles: tuple[str, ...]) -> list[Callable]:
    items = (cfg.get(reader) or {}).get(key) or []
    src = _source(cfg, reader)
    if not isinstance(items, list):
        raise ConfigError(f"{src}: {reader}.{key}: must be a list of {{Name: {{args}}}} items")
    ops = []
    for i, item in enumerate(items):
        path = f"{reader}.{key}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{src}: {path}: each item must be one {{Name: {{args}}}} mapping")
        ((name, kwargs),) = item.items()
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ConfigError(f"{src}: {path}.{name}: arguments must be a mapping")
        role = _role_of(name, roles, f"{src}: {path}")
        ops.append(create(name, kwargs or {}, role=role, key_path=f"{path}.{name}", cfg=cfg))
    return ops


def _reader_value(
    cfg: dict, reader: str, key: str, default: Any, kind: type, minimum: int | None = None
) -> Any:
    value = (cfg.get(reader) or {}).get(key, default)
    bad = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    if bad or (minimum is not None and value < minimum):
        want = kind.__name__ + (f" >= {minimum}" if minimum is not None else "")
        raise ConfigError(f"{_source(cfg, reader)}: {reader}.{key}: expected {want}, got {value!r}")
    return value


class Collate:
    """Batch transforms, then one stacked numpy array per contract field (see BATCH_FIELDS).

    Ground truth that no ``PadGT`` padded yet is padded here, so a batch always has
    ``gt_bbox``/``gt_class``/``gt_score``/``pad_gt_mask`` of one length M. ``gt_poly`` (when the
    samples have it) stays a Python list of B per-image lists (``_collate``); ``__call__`` packs
    it for paddle's loader (``PACKED_POLY_KEY``), ``DetDataLoader`` unpacks it. An exception (in a
    sample or here) becomes a batch ``{ERROR_KEY: text as uint8}`` that ``DetDataLoader`` raises.
    """

    def __init__(self, batch_transform: Callable[[list[dict]], list[dict]]) -> None:
        self.batch_transform = batch_transform

    def __call__(self, samples: list[dict]) -> dict[str, np.ndarray]:
        errors = [s[ERROR_KEY] for s in samples if ERROR_KEY in s]
        if not errors:
            try:
                batch = self._collate(samples)
                if "gt_poly" in batch:
                    batch[PACKED_POLY_KEY] = pack_polys(batch.pop("gt_poly"))
                return batch
            except Exception as e:
                errors = [exception_text(e)]
        return {ERROR_KEY: np.frombuffer(errors[0].encode(), np.uint8)}

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
    failed, instead of waiting forever: one line for a DataError (e.g. an unreadable image in
    eval mode), the original traceback after the first line for other exceptions. A batch's
    ``gt_poly`` comes out as a list of B lists (objects) of lists of float32 [2K] numpy arrays."""

    def __iter__(self) -> Iterator[dict]:  # type: ignore[override]
        for batch in super().__iter__():
            if ERROR_KEY in batch:
                text = batch[ERROR_KEY].numpy().tobytes().decode(errors="replace")
                lines = text.splitlines()
                if len(lines) > 1:  # a traceback: its last line first, then the whole
                    text = f"{lines[-1]}\n{text}"
                raise DataPipelineError(f"loading a batch failed: {text}")
            if PACKED_POLY_KEY in batch:
                batch["gt_poly"] = unpack_polys(batch.pop(PACKED_POLY_KEY))
            yield batch


def _init_worker(worker_id: int) -> None:
    """Distinct random streams per worker and per epoch (paddle draws a new base seed each
    epoch). Do not call cv2.setNumThreads here: in a forked child it can deadlock on the
    parent's OpenCV thread pool."""
    info = paddle.io.get_worker_info()
    seed = ((info.seed if info is not None else 0) + worker_id) % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    cfg: dict, mode: str, dataset: DetDataset, distributed: bool = False
) -> paddle.io.DataLoader:
    """A DataLoader over ``dataset`` with the reader section of ``mode`` (train/eval/test).

    Each batch is a dict of paddle Tensors as in docs/contracts.md; an exception while loading
    a batch is raised in the loop as DataPipelineError. With ``distributed`` the
    batches are split over ranks by ``paddle.io.DistributedBatchSampler``. Call
    ``set_loader_epoch(loader, epoch)`` at the start of every epoch.
    """
    _check_mode(mode)
    reader = READER_SECTIONS[mode]
    section = cfg.get(reader) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{_source(cfg, reader)}: {reader}: must be a mapping")
    for key in section:
        if key not in READER_KEYS:
            close = difflib.get_close_matches(key, READER_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(READER_KEYS)
            raise ConfigError(
                f"{_source(cfg, reader)}: {reader}.{key}: unknown key{hint} ({known})"
            )
    sample_ops = _build_ops(cfg, reader, "sample_transforms", ("transform",))
    batch_ops = _build_ops(cfg, reader, "batch_transforms", ("batch_transform", "transform"))
    kinds = [type(op) for op in sample_ops]
    if Mixup in kinds and (Decode not in kinds or kinds.index(Decode) > kinds.index(Mixup)):
        raise ConfigError(
            f"{_source(cfg, reader)}: {reader}.sample_transforms: Mixup must follow Decode"
        )
    mixup_epoch = _reader_value(cfg, reader, "mixup_epoch", -1, int)
    dataset.set_transform(
        Compose(sample_ops), mixup=mode == "train" and Mixup in kinds, mixup_epoch=mixup_epoch
    )
    dataset.defer_errors = True
    batch_size = _reader_value(cfg, reader, "batch_size", 1, int, 1)
    shuffle = _reader_value(cfg, reader, "shuffle", mode == "train", bool)
    drop_last = _reader_value(cfg, reader, "drop_last", False, bool)
    num_workers = _reader_value(cfg, reader, "num_workers", 0, int, 0)
    shared_memory = _reader_value(cfg, reader, "use_shared_memory", True, bool)
    if distributed:
        sampler = paddle.io.DistributedBatchSampler(
            dataset, batch_size, shuffle=shuffle, drop_last=drop_last
        )
    else:
        sampler = paddle.io.BatchSampler(
            dataset, shuffle=shuffle, batch_size=batch_size, drop_last=drop_last
        )
    return DetDataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=Collate(BatchCompose(batch_ops)),
        num_workers=num_workers,
        use_shared_memory=shared_memory,
        worker_init_fn=_init_worker if num_workers > 0 else None,
        return_list=True,
    )


def set_loader_epoch(loader: paddle.io.DataLoader, epoch: int) -> None:
    """Tell the dataset (mixup schedule) and a distributed sampler (shuffle seed) the epoch."""
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    if hasattr(loader.batch_sampler, "set_epoch"):
        loader.batch_sampler.set_epoch(epoch)
