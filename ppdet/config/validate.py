"""Check a whole resolved config before anything is built, so mistakes fail in one line early."""

from __future__ import annotations

import difflib
from typing import Any

from .builder import check_kwargs, type_ok
from .errors import ConfigError
from .registry import all_names, is_registered, lookup

# Top-level keys that are not class sections, with the type each must have.
GLOBAL_KEYS: dict[str, Any] = {
    "architecture": str,
    "num_classes": int,
    "metric": str,
    "weights": str | None,
    "pretrain_weights": str | None,
    "epoch": int | None,
    "max_iters": int | None,
    "snapshot_epoch": int,
    "snapshot_iter": int | None,
    "log_iter": int,
    "save_dir": str,
    "use_gpu": bool,
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
}

READERS = ("TrainReader", "EvalReader", "TestReader")
READER_KEYS: dict[str, Any] = {
    "sample_transforms": list,
    "batch_transforms": list,
    "batch_size": int,
    "shuffle": bool,
    "drop_last": bool,
    "num_workers": int,
    "mixup_epoch": int,
    "use_shared_memory": bool,
}
DATASETS = ("TrainDataset", "EvalDataset", "TestDataset")


def _src(cfg: dict, key: str) -> str:
    return cfg.source_of(key) if hasattr(cfg, "source_of") else "config"


def _check_transform_list(cfg: dict, reader: str, key: str, items: Any, roles: tuple) -> None:
    path = f"{reader}.{key}"
    if not isinstance(items, list):
        raise ConfigError(
            f"{_src(cfg, reader)}: {path}: must be a list of {{Name: {{args}}}} items"
        )
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(
                f"{_src(cfg, reader)}: {item_path}: each item must be one {{Name: {{args}}}} mapping"
            )
        ((name, kwargs),) = item.items()
        cls = next((lookup(name, r) for r in roles if name in all_names(r)), None)
        if cls is None:
            try:
                lookup(name, roles[0])
            except KeyError as e:
                raise ConfigError(f"{_src(cfg, reader)}: {item_path}: {e.args[0]}") from None
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ConfigError(
                f"{_src(cfg, reader)}: {item_path}.{name}: arguments must be a mapping"
            )
        check_kwargs(cls, kwargs or {}, f"{item_path}.{name}", _src(cfg, reader))


def validate_config(cfg: dict) -> None:
    """Raise ConfigError on the first unknown key, unknown class or wrongly typed value."""
    arch = cfg.get("architecture")
    if arch is None:
        raise ConfigError(f"{_src(cfg, 'architecture')}: architecture: missing (e.g. YOLOv3)")
    if not isinstance(arch, str):
        raise ConfigError(f"{_src(cfg, 'architecture')}: architecture: must be a class name")
    try:
        lookup(arch, "architecture")
    except KeyError as e:
        raise ConfigError(f"{_src(cfg, 'architecture')}: architecture: {e.args[0]}") from None

    for key, value in cfg.items():
        if is_registered(key):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{_src(cfg, key)}: {key}: must be a mapping of arguments")
            check_kwargs(lookup(key), value, key, _src(cfg, key))
        elif key in GLOBAL_KEYS:
            if not type_ok(value, GLOBAL_KEYS[key]):
                want = getattr(GLOBAL_KEYS[key], "__name__", str(GLOBAL_KEYS[key]))
                raise ConfigError(f"{_src(cfg, key)}: {key}: expected {want}, got {value!r}")
        else:
            close = difflib.get_close_matches(key, list(GLOBAL_KEYS) + all_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{_src(cfg, key)}: {key}: unknown top-level key{hint}")

    for name in DATASETS:
        section = cfg.get(name)
        if section is None:
            continue
        cls_name = section.get("name")
        if cls_name is None:
            raise ConfigError(f"{_src(cfg, name)}: {name}.name: missing (e.g. COCODataSet)")
        try:
            cls = lookup(cls_name, "dataset")
        except KeyError as e:
            raise ConfigError(f"{_src(cfg, name)}: {name}.name: {e.args[0]}") from None
        kwargs = {k: v for k, v in section.items() if k != "name"}
        check_kwargs(cls, kwargs, name, _src(cfg, name))

    for reader in READERS:
        section = cfg.get(reader)
        if section is None:
            continue
        for key, value in section.items():
            if key not in READER_KEYS:
                close = difflib.get_close_matches(key, list(READER_KEYS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{_src(cfg, reader)}: {reader}.{key}: unknown reader key{hint}")
            if not type_ok(value, READER_KEYS[key]):
                want = READER_KEYS[key].__name__
                raise ConfigError(
                    f"{_src(cfg, reader)}: {reader}.{key}: expected {want}, got {value!r}"
                )
        # sample operators may also stand in batch_transforms: they run on every sample
        lists = (
            ("sample_transforms", ("transform",)),
            ("batch_transforms", ("batch_transform", "transform")),
        )
        for key, roles in lists:
            if key in section:
                _check_transform_list(cfg, reader, key, section[key], roles)
