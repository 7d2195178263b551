"""The schema of the dataset and reader sections, used by config validation and the data loader.

``TrainDataset: {name: COCODataSet, ...}`` names a registered dataset class and its arguments;
``TrainReader`` (``EvalReader``, ``TestReader``) holds the transforms and the batching:

    TrainReader:
      sample_transforms: [{Decode: {}}, {RandomFlip: {prob: 0.5}}, ...]   # sample operators
      batch_transforms: [{BatchRandomResize: {...}}, {PadGT: {}}]   # batch or sample operators
      batch_size: 8            # default 1
      shuffle: true            # default: true in train mode only
      drop_last: true          # default false
      num_workers: 2           # default: the top-level worker_num, else 0 (main process)
      mixup_epoch: 200         # Mixup while epoch < mixup_epoch; -1 (default): every epoch
      use_shared_memory: true  # default true
      aspect_ratio_grouping: false  # train: batches of only landscape or only portrait images

``reader_spec`` and ``dataset_spec`` check a section completely (keys, types, limits, operator
names and their arguments) and return what the loader builds, so a config that loads also
builds. PaddleDetection keys without a use here (``inputs_def``, ``data_fields``) are noted
and ignored (ppdet/config/compat.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any

from . import compat
from .builder import check_kwargs
from .errors import ConfigError
from .loader import source_of
from .registry import all_names, lookup

MODES = ("train", "eval", "test")
READERS = {"train": "TrainReader", "eval": "EvalReader", "test": "TestReader"}
DATASETS = {"train": "TrainDataset", "eval": "EvalDataset", "test": "TestDataset"}
TRANSFORM_LISTS = {  # list key -> registry roles of its operators, tried in order
    "sample_transforms": ("transform",),
    "batch_transforms": ("batch_transform", "transform"),  # sample ops run on every sample
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A scalar reader key: its type, default and lowest allowed value."""

    kind: type
    default: Any
    minimum: int | None = None


SETTINGS: dict[str, Setting] = {
    "batch_size": Setting(int, 1, 1),
    "shuffle": Setting(bool, None),  # None: shuffle in train mode only
    "drop_last": Setting(bool, False),
    "num_workers": Setting(int, 0, 0),  # default: the top-level worker_num (PaddleDetection)
    "mixup_epoch": Setting(int, -1),
    "use_shared_memory": Setting(bool, True),
    "aspect_ratio_grouping": Setting(bool, False),  # data/sampler.py (train mode)
}
READER_KEYS = (*TRANSFORM_LISTS, *SETTINGS)


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One operator of a transform list: ``create(name, kwargs, role=role, key_path=...)``."""

    name: str
    role: str
    kwargs: dict
    key_path: str  # e.g. TrainReader.sample_transforms[2].Resize


@dataclasses.dataclass(frozen=True)
class ReaderSpec:
    """A checked reader section; ``shuffle`` None means "in train mode only"."""

    sample_transforms: tuple[OpSpec, ...] = ()
    batch_transforms: tuple[OpSpec, ...] = ()
    batch_size: int = 1
    shuffle: bool | None = None
    drop_last: bool = False
    num_workers: int = 0
    mixup_epoch: int = -1
    use_shared_memory: bool = True
    aspect_ratio_grouping: bool = False


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A checked dataset section: registered class ``name`` and its constructor ``kwargs``."""

    name: str
    kwargs: dict


def _value_ok(value: Any, setting: Setting) -> bool:
    if not isinstance(value, setting.kind) or (setting.kind is int and isinstance(value, bool)):
        return False
    return setting.minimum is None or value >= setting.minimum


def _role_of(name: Any, roles: tuple[str, ...], where: str) -> str:
    for role in roles:
        if isinstance(name, str) and name in all_names(role):
            return role
    try:
        lookup(str(name), roles[0])
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from None
    raise AssertionError("unreachable")


def _transform_list(items: Any, path: str, roles: tuple[str, ...], src: str) -> tuple:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(f"{src}: {path}: must be a list of {{Name: {{args}}}} items")
    ops = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(
                f"{src}: {item_path}: each item must be one {{Name: {{args}}}} mapping"
            )
        ((name, kwargs),) = item.items()
        role = _role_of(name, roles, f"{src}: {item_path}")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ConfigError(f"{src}: {item_path}.{name}: arguments must be a mapping")
        op_path = f"{item_path}.{name}"
        check_kwargs(lookup(name, role), kwargs or {}, op_path, src)
        ops.append(OpSpec(name, role, dict(kwargs or {}), op_path))
    return tuple(ops)


def reader_spec(cfg: dict, reader: str) -> ReaderSpec:
    """The checked ``reader`` section (``TrainReader``, ...) of ``cfg``; defaults if absent.

    Raises ConfigError (one line naming file and key) for an unknown key, a wrong type or
    value, an unknown operator or operator argument, or Mixup before Decode.
    """
    section = cfg.get(reader)
    src = source_of(cfg, reader)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{src}: {reader}: must be a mapping of reader settings")
    values: dict[str, Any] = {}
    worker_num = cfg.get("worker_num")
    if isinstance(worker_num, int) and not isinstance(worker_num, bool) and worker_num >= 0:
        values["num_workers"] = worker_num
    for key, value in section.items():
        where = f"{src}: {reader}.{key}"
        if key in TRANSFORM_LISTS:
            values[key] = _transform_list(value, f"{reader}.{key}", TRANSFORM_LISTS[key], src)
        elif key in SETTINGS:
            setting = SETTINGS[key]
            if not _value_ok(value, setting):
                want = setting.kind.__name__
                want += f" >= {setting.minimum}" if setting.minimum is not None else ""
                raise ConfigError(f"{where}: expected {want}, got {value!r}")
            values[key] = value
        elif key in compat.READER:
            compat.note_ignored(compat.READER, key, value, f"{src}: {reader}.{key}")
        else:
            close = difflib.get_close_matches(key, [*READER_KEYS, *compat.READER], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown reader key{hint} (known: {', '.join(READER_KEYS)})"
            )
    names = [op.name for op in values.get("sample_transforms", ())]
    if "Mixup" in names and ("Decode" not in names or names.index("Decode") > names.index("Mixup")):
        raise ConfigError(f"{src}: {reader}.sample_transforms: Mixup must follow Decode")
    return ReaderSpec(**values)


def dataset_spec(cfg: dict, section_name: str) -> DatasetSpec | None:
    """The checked dataset section ``section_name`` (``TrainDataset``, ...); None if absent.

    Raises ConfigError for a section without ``name``, an unknown dataset class, or an
    argument the class does not take (PaddleDetection's ``data_fields`` is noted and ignored).
    """
    section = cfg.get(section_name)
    if section is None:
        return None
    src = source_of(cfg, section_name)
    if not isinstance(section, dict):
        raise ConfigError(f"{src}: {section_name}: must be a mapping with name: DatasetClass")
    name = section.get("name")
    if name is None:
        raise ConfigError(f"{src}: {section_name}.name: missing (e.g. COCODataSet)")
    try:
        cls = lookup(str(name), "dataset")
    except KeyError as e:
        raise ConfigError(f"{src}: {section_name}.name: {e.args[0]}") from None
    kwargs = {}
    for key, value in section.items():
        if key == "name":
            continue
        if key in compat.DATASET and key not in inspect.signature(cls.__init__).parameters:
            compat.note_ignored(compat.DATASET, key, value, f"{src}: {section_name}.{key}")
            continue
        kwargs[key] = value
    check_kwargs(cls, kwargs, section_name, src)
    return DatasetSpec(str(name), kwargs)
