"""DetDataset: records in, transformed samples out; shared checks for parsed boxes.

A record (docs/contracts.md) is a plain dict: ``im_file`` str, ``im_id`` int64 [1], ``h``, ``w``
int (original size), ``gt_bbox`` float32 [M, 4] x1y1x2y2 pixels, ``gt_class`` int32 [M, 1]
(0-based), ``is_crowd`` int32 [M, 1], ``difficult`` int32 [M, 1].
"""

from __future__ import annotations

import copy
import logging
import os
import random
from collections import Counter
from collections.abc import Callable

import numpy as np
import paddle

from ppdet.data.errors import DataNotFoundError, DatasetError, ImageDecodeError, exception_text
from ppdet.data.sampler import derive_seed
from ppdet.data.transforms.gt_fields import select_gt

logger = logging.getLogger("ppdet.data")

MODES = ("train", "eval", "test")
ERROR_KEY = "__error__"  # a sample that only carries the text of an exception (see defer_errors)
# [(image path, reason), ...]: images left out while this sample was made (see DetDataset)
SKIPPED_KEY = "__skipped__"
# the seed a sample's randomness came from (set_seed); Collate seeds batch transforms from them
SEED_KEY = "__seed__"
_MAX_RETRIES = 20  # unreadable images tried in a row before giving up
_CLIP_TOLERANCE = 1.0  # px a box may stick out of the image before clipping is reported


def make_record(
    im_file: str,
    im_id: int,
    h: int,
    w: int,
    boxes: np.ndarray | list | None = None,
    classes: np.ndarray | list | None = None,
    is_crowd: np.ndarray | list | None = None,
    difficult: np.ndarray | list | None = None,
) -> dict:
    """A record with the contract dtypes; missing per-box fields are zeros."""
    boxes = np.asarray(boxes if boxes is not None else [], np.float32).reshape(-1, 4)
    m = len(boxes)

    def column(values: np.ndarray | list | None) -> np.ndarray:
        if values is None:
            return np.zeros((m, 1), np.int32)
        return np.asarray(values, np.int32).reshape(m, 1)

    return {
        "im_file": im_file,
        "im_id": np.array([im_id], np.int64),
        "h": int(h),
        "w": int(w),
        "gt_bbox": boxes,
        "gt_class": column(classes),
        "is_crowd": column(is_crowd),
        "difficult": column(difficult),
    }


def clean_boxes(
    boxes: np.ndarray, w: float, h: float
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Clip boxes [M, 4] to a w x h image and flag unusable ones.

    Returns the clipped boxes, a keep mask [M] and one (action, reason) per affected box:
    non-finite or zero/negative-area boxes are dropped, boxes with nothing left inside the image
    are dropped, boxes sticking out by more than 1 px are clipped (and reported).
    """
    problems: list[tuple[str, str]] = []
    keep = np.ones(len(boxes), bool)
    clipped = boxes.copy()
    clipped[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
    clipped[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
    for i, (box, inside) in enumerate(zip(boxes, clipped, strict=True)):
        if not np.all(np.isfinite(box)):
            problems.append(("dropped", "non-finite coordinates"))
        elif box[2] <= box[0] or box[3] <= box[1]:
            problems.append(("dropped", "zero or negative area"))
        elif inside[2] <= inside[0] or inside[3] <= inside[1]:
            problems.append(("dropped", "outside the image"))
        else:
            if np.abs(box - inside).max() > _CLIP_TOLERANCE:
                problems.append(("clipped", "out of the image"))
            continue
        keep[i] = False
    return clipped, keep, problems


def describe(problems: list[tuple[str, str]]) -> str:
    """'dropped 2 boxes (zero or negative area); clipped 1 box (out of the image)'."""
    parts = []
    for (action, reason), n in Counter(problems).items():
        parts.append(f"{action} {n} box{'es' if n > 1 else ''} ({reason})")
    return "; ".join(parts)


class BadInputLog:
    """Skip warnings of one parse, one line each; after ``limit`` lines only a final count."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.count = 0

    def warn(self, message: str) -> None:
        self.count += 1
        if self.count <= self.limit:
            logger.warning(message)

    def finish(self, source: str) -> None:
        if self.count > self.limit:
            logger.warning("%s: %d more bad entries not shown", source, self.count - self.limit)


# How to get the datasets the configs name, for "not found" errors (by dataset kind).
GET_DATASET = {
    "coco": "download COCO 2017 with: python dataset/coco/download_coco.py",
    "voc": "download Pascal VOC with: python dataset/voc/download_voc.py",
    "demo": "generate it with: python dataset/generate_demo.py --out dataset/demo",
}


def how_to_get(path: str, kind: str | None) -> str:
    """ " (<how to get the dataset>)" for a missing file of a ``kind`` ("coco"/"voc") dataset;
    the bundled demo set is recognised by its folder (dataset/demo)."""
    if "dataset/demo/" in path.replace(os.sep, "/"):
        kind = "demo"
    return f" ({GET_DATASET[kind]}, or set dataset_dir to your copy)" if kind in GET_DATASET else ""


def require_file(path: str, what: str, kind: str | None = None) -> str:
    """``path`` if it is a file; DataNotFoundError naming it (and how to get it) otherwise."""
    if not os.path.isfile(path):
        raise DataNotFoundError(f"{what} not found: {path}{how_to_get(path, kind)}")
    return path


def require_dir(path: str, what: str, kind: str | None = None) -> str:
    """``path`` if it is a folder; DataNotFoundError naming it (and how to get it) otherwise."""
    if not os.path.isdir(path):
        raise DataNotFoundError(f"{what} not found: {path}{how_to_get(path, kind)}")
    return path


def skip_message(path: str, reason: str, mode: str) -> str:
    """The warning for an image left out in ``mode`` (train: replaced; eval/test: skipped)."""
    what = "another image takes its place" if mode == "train" else "skipped"
    return f"{path}: {reason}; {what}"


def is_placeholder(sample: dict) -> bool:
    """Whether ``sample`` only stands for skipped images (eval/test: drop it from the batch)."""
    return SKIPPED_KEY in sample and "im_file" not in sample


class DetDataset(paddle.io.Dataset):
    """Base of the detection datasets: a list of records, transformed on access.

    Subclasses parse their annotations in ``__init__`` and set ``records``, ``label_list``,
    ``catid2clsid`` and ``clsid2catid``. The loader then calls ``set_mode``,
    ``set_transform`` and, every epoch, ``set_epoch``.

    Args:
        dataset_dir: root; ``image_dir`` and ``anno_path`` are relative to it.
        allow_empty: keep images without boxes.
        empty_ratio: if in [0, 1), keep at most this fraction of images without boxes
            (chosen with a fixed seed); 1.0 keeps them all.
        drop_crowd: remove crowd boxes from the samples (they stay in ``records``); None means
            "in train mode only".

    Images that cannot be read (``ImageDecodeError``: missing, corrupt, truncated, too large,
    ...) never end a run. In train mode another random image takes the bad one's place (a bad
    mixup partner: another partner), so batches stay full; in eval/test mode the sample is a
    placeholder ``{SKIPPED_KEY: [(path, reason)]}`` that the loader drops from its batch. Either
    way the sample lists the skipped images under ``SKIPPED_KEY``: the loader warns once per
    file and counts them (``DetDataLoader.skipped``). Used without the loader
    (``defer_errors`` False) the dataset warns itself, once per file.

    After ``set_seed(seed)`` every random choice made for sample ``idx`` (augmentation, the
    mixup partner, a replacement for a bad image) comes from Python's and NumPy's global
    generators seeded with ``derive_seed(seed, epoch, idx)`` just before it is made: the
    sample is a function of (seed, epoch, idx), whichever process or worker makes it and
    whatever was loaded before (exact resume mid-epoch, the same data for any number of
    processes). The seed travels with the sample (``SEED_KEY``) for the batch transforms.
    """

    kind: str | None = None  # "coco" / "voc": names how to get the data when it is missing

    def __init__(
        self,
        dataset_dir: str = "",
        image_dir: str = "",
        anno_path: str = "",
        allow_empty: bool = True,
        empty_ratio: float = 1.0,
        drop_crowd: bool | None = None,
    ) -> None:
        super().__init__()
        self.dataset_dir = dataset_dir
        self.image_dir = image_dir
        self.anno_path = anno_path
        self.allow_empty = allow_empty
        self.empty_ratio = empty_ratio
        self.drop_crowd = drop_crowd
        self.records: list[dict] = []
        self.label_list: list[str] = []
        self.catid2clsid: dict[int, int] = {}
        self.clsid2catid: dict[int, int] = {}
        self.mode = "eval"
        self._transform: Callable[[dict], dict] | None = None
        self._mixup = False
        self._mixup_epoch = -1
        self._epoch = 0
        self._bad_files: dict[str, str] = {}  # path -> reason, found in this process
        self.seed: int | None = None  # set_seed: per-sample random streams
        # Set by the loader: return exceptions as {ERROR_KEY: text} samples so the batch carries
        # them to the main loop (an exception in paddle's loader thread would hang it).
        self.defer_errors = False

    # -- set-up by the loader -------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """ "train" | "eval" | "test": decides crowd dropping and bad-image handling."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def set_transform(
        self, transform: Callable[[dict], dict] | None, mixup: bool = False, mixup_epoch: int = -1
    ) -> None:
        """Transform applied to each sample. With ``mixup`` a random partner record is attached
        as ``sample["mixup"]`` while ``epoch < mixup_epoch`` (every epoch if ``mixup_epoch < 0``).
        """
        self._transform = transform
        self._mixup = mixup
        self._mixup_epoch = mixup_epoch

    def set_epoch(self, epoch: int) -> None:
        """Current epoch (0-based); switches mixup off once it reaches ``mixup_epoch``."""
        self._epoch = epoch

    def set_seed(self, seed: int | None) -> None:
        """Seed every sample's randomness from (seed, epoch, index); None: leave the global
        generators alone."""
        self.seed = None if seed is None else int(seed)

    # -- information for evaluators and tools ---------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.label_list)

    def get_anno(self) -> str:
        """Full path of the annotation file ("" if none)."""
        if not self.anno_path:
            return ""
        return os.path.join(self.dataset_dir, self.anno_path)

    def get_imid2path(self) -> dict[int, str]:
        return {int(r["im_id"][0]): r["im_file"] for r in self.records}

    def path(self, *parts: str) -> str:
        return os.path.join(self.dataset_dir, *[p for p in parts if p])

    # -- parsing helpers for subclasses ---------------------------------------------------
    def finish_records(self, records: list[dict], source: str) -> list[dict]:
        """Apply ``allow_empty``/``empty_ratio``; DatasetError if nothing usable is left."""
        if not any(len(r["gt_bbox"]) for r in records):
            raise DatasetError(f"{source}: no usable images with boxes (see the warnings above)")
        if not self.allow_empty:
            return [r for r in records if len(r["gt_bbox"])]
        if 0 <= self.empty_ratio < 1:
            empty = [i for i, r in enumerate(records) if not len(r["gt_bbox"])]
            n_full = len(records) - len(empty)
            n_keep = min(len(empty), int(n_full * self.empty_ratio / (1 - self.empty_ratio)))
            rng = np.random.default_rng(0)
            dropped = set(rng.permutation(empty)[n_keep:].tolist())
            return [r for i, r in enumerate(records) if i not in dropped]
        return records

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> dict:
        try:
            if self.seed is None:
                return self._get(idx)
            seed = derive_seed(self.seed, self._epoch, idx)
            random.seed(seed)
            np.random.seed(seed)
            sample = self._get(idx)
            sample[SEED_KEY] = seed
            return sample
        except Exception as e:
            if not self.defer_errors:
                raise
            return {ERROR_KEY: exception_text(e)}

    def _get(self, idx: int) -> dict:
        skipped: list[tuple[str, str]] = []
        for _ in range(_MAX_RETRIES):
            record = self.records[idx]
            known = self._bad_files.get(record["im_file"])
            if known is not None:  # found bad before: skip without reading it again
                if self.mode != "train":
                    return {SKIPPED_KEY: [(record["im_file"], known)]}
                idx = np.random.randint(len(self.records))
                continue
            try:
                sample = self._sample(record)
                sample = self._transform(sample) if self._transform else sample
            except ImageDecodeError as e:
                self._note_bad(e)
                skipped.append((e.path, e.reason))
                if self.mode != "train":
                    return {SKIPPED_KEY: skipped}
                if e.path == record["im_file"]:  # else a bad mixup partner: same image again
                    idx = np.random.randint(len(self.records))
                continue
            if skipped:
                sample[SKIPPED_KEY] = skipped
            return sample
        raise DatasetError(f"{self.get_anno() or 'dataset'}: too many unreadable images in a row")

    def _note_bad(self, error: ImageDecodeError) -> None:
        if error.path in self._bad_files:
            return
        self._bad_files[error.path] = error.reason
        if not self.defer_errors:  # the loader warns in the main process instead
            logger.warning(skip_message(error.path, error.reason, self.mode))

    def _drop_crowd_now(self) -> bool:
        return self.mode == "train" if self.drop_crowd is None else self.drop_crowd

    def _copy(self, record: dict) -> dict:
        sample = copy.deepcopy(record)
        if self._drop_crowd_now() and "is_crowd" in sample:
            select_gt(sample, sample["is_crowd"][:, 0] == 0)
        return sample

    def _sample(self, record: dict) -> dict:
        sample = self._copy(record)
        mixup_on = self._mixup_epoch < 0 or self._epoch < self._mixup_epoch
        if self._mixup and mixup_on and len(self.records) > 1:
            for _ in range(_MAX_RETRIES):
                partner = self.records[np.random.randint(len(self.records))]
                if partner is not record and partner["im_file"] not in self._bad_files:
                    sample["mixup"] = self._copy(partner)
                    break
        return sample
