"""Check a whole resolved config before anything is built, so mistakes fail in one line early.

Every top-level key is one of: a registered class's section (checked against its constructor),
a global setting (``GLOBAL_KEYS``), a default that registered classes share (``__shared__``,
e.g. ``norm_type``), a section with a registered load-time check (``LearningRate``,
``OptimizerBuilder``: ppdet/config/sections.py), a dataset or reader section (their schema:
ppdet/config/readers.py), or a PaddleDetection key that ppdet ignores with a note
(ppdet/config/compat.py). Anything else is an error with a did-you-mean hint.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from . import compat
from .builder import arg_type, check_kwargs, type_name, type_ok
from .errors import ConfigError
from .loader import source_of
from .readers import DATASETS, READERS, dataset_spec, reader_spec
from .registry import all_names, is_registered, lookup
from .sections import check_sections

# Top-level keys that are not class sections, with the type each must have.
GLOBAL_KEYS: dict[str, Any] = {
    "architecture": str,
    "num_classes": int,
    "metric": str,
    "map_type": str,  # VOC: "11point" or "area" (integral), the primary mAP
    "weights": str | None,
    "pretrain_weights": str | None,
    "epoch": int | None,
    "max_iters": int | None,
    "snapshot_epoch": int,
    "snapshot_iter": int | None,
    "log_iter": int,
    "save_dir": str,
    "use_gpu": bool,  # false: run on the CPU even with a GPU build (ppdet/engine/cli.py)
    "worker_num": int,  # default num_workers of every reader (PaddleDetection's name)
    "amp": bool,
    "seed": int | None,
    "use_vdl": bool,
    "use_ema": bool,
    "ema_decay": float,
    "vdl_log_dir": str,
    "LearningRate": dict,
    "OptimizerBuilder": dict,
    "TrainDataset": dict,
    "EvalDataset": dict,
    "TestDataset": dict,
    "TrainReader": dict,
    "EvalReader": dict,
    "TestReader": dict,
    "draw_threshold": float,
    # engine: the total batch the schedule was written for (engine/schedule.py), gradient
    # accumulation (micro-batches per step), training hooks (engine/hooks.py)
    "reference_batch_size": int | None,
    "accumulate_steps": int,
    "stitcher": dict | None,
}


def shared_keys() -> dict[str, Any]:
    """Top-level keys that registered classes take as defaults (``__shared__``) -> the type of
    the first class's argument (e.g. ``norm_type`` of ResNet)."""
    keys: dict[str, Any] = {}
    for name in all_names():
        cls = lookup(name)
        for key in getattr(cls, "__shared__", ()):
            keys.setdefault(key, arg_type(cls, key))
    return keys


def _check_type(cfg: dict, key: str, value: Any, tp: Any) -> None:
    if tp is not inspect.Parameter.empty and not type_ok(value, tp):
        raise ConfigError(f"{source_of(cfg, key)}: {key}: expected {type_name(tp)}, got {value!r}")


def _check_architecture(cfg: dict) -> None:
    arch = cfg.get("architecture")
    src = source_of(cfg, "architecture")
    if arch is None:
        raise ConfigError(f"{src}: architecture: missing (e.g. YOLOv3)")
    if not isinstance(arch, str):
        raise ConfigError(f"{src}: architecture: must be a class name")
    try:
        lookup(arch, "architecture")
    except KeyError as e:
        raise ConfigError(f"{src}: architecture: {e.args[0]}") from None


def validate_config(cfg: dict) -> None:
    """Raise ConfigError on the first unknown key, unknown class or wrongly typed value.

    Registers every buildable class first (``ppdet.register_all``), so a config is checked
    against all of them whoever calls this.
    """
    import ppdet

    ppdet.register_all()
    _check_architecture(cfg)
    shared = shared_keys()
    for key, value in cfg.items():
        src = source_of(cfg, key)
        if is_registered(key):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{src}: {key}: must be a mapping of arguments")
            check_kwargs(lookup(key), value, key, src)
        elif key in GLOBAL_KEYS:
            _check_type(cfg, key, value, GLOBAL_KEYS[key])
        elif key in shared:
            _check_type(cfg, key, value, shared[key])
        elif key in compat.TOP_LEVEL:
            compat.note_ignored(compat.TOP_LEVEL, key, value, f"{src}: {key}")
        else:
            known = [*GLOBAL_KEYS, *shared, *compat.TOP_LEVEL, *all_names()]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{src}: {key}: unknown top-level key{hint}")
    for name in DATASETS.values():
        dataset_spec(cfg, name)
    for name in READERS.values():
        if name in cfg:
            reader_spec(cfg, name)
    check_sections(cfg)
