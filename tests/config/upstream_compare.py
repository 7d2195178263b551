"""Compare a config with PaddleDetection's own config key by key, class defaults included.

A config means more than its keys: a key it leaves out takes the default of the class that
reads it. ``effective(cfg, table)`` therefore flattens a resolved config into
``{key path: Value}`` over every argument of every class the config reaches (architecture ->
its parts -> theirs, the datasets, the readers and their transforms, LearningRate and
OptimizerBuilder), taking a value from the config when it sets one and from ``table`` (the
classes' constructor defaults) otherwise. Run on our config with our classes and on
PaddleDetection's config with its classes (a fixture of facts from its source), the two flat
dicts must agree.

Key paths: ``ResNet.depth``, ``RPNHead.anchor_generator.strides`` (a mapping argument builds a
helper class: its keys are that class's arguments), ``BBoxPostProcess.nms.name`` and
``.nms.keep_top_k`` (an inline ``{name: X, ...}`` component),
``TrainReader.sample_transforms`` (the list of operator names, in order) and
``TrainReader.sample_transforms.Resize.target_size`` (an operator's argument; a second
operator of the same name in one list is ``Resize#2``), ``LearningRate.schedulers.LinearWarmup.steps``,
``OptimizerBuilder.optimizer.type``. A string argument naming a registered class
(``backbone: ResNet``) reaches that class's own top-level section (``ResNet.*``).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ABSENT = "<absent>"

# Top-level sections that are not classes, and the reader keys holding operator lists.
READERS = ("TrainReader", "EvalReader", "TestReader")
DATASETS = ("TrainDataset", "EvalDataset", "TestDataset")
TRANSFORM_LISTS = ("sample_transforms", "batch_transforms")


@dataclass
class ClassInfo:
    """What a class does with a config section: its constructor defaults (arguments without a
    default are left out), the arguments filled from the config's top level (``__shared__``),
    and the helper class a mapping given to an argument builds (``nested``)."""

    defaults: dict[str, Any] = field(default_factory=dict)
    shared: tuple[str, ...] = ()
    nested: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Value:
    """A flattened value and whether the config set it (False: a class default)."""

    value: Any
    explicit: bool


ClassTable = Callable[[str], "ClassInfo | None"]


def _op_items(items: list, path: str) -> list[tuple[str, dict]]:
    """``[{Name: {args}}, {name: Name, ...}]`` -> [(Name, args)]."""
    out = []
    for item in items or []:
        if isinstance(item, dict) and "name" in item:
            out.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, args),) = item.items()
            out.append((name, dict(args or {})))
        else:
            raise ValueError(f"{path}: not an operator item: {item!r}")
    return out


def effective(
    cfg: dict,
    table: ClassTable,
    top_level: dict[str, ClassInfo],
    references: tuple[str, ...] = (),
) -> dict[str, Value]:
    """Flatten ``cfg`` (``_BASE_`` resolved) into {key path: Value}; see the module docstring.

    ``table(name)`` gives a class's ClassInfo (None: not a class); ``top_level`` gives the
    ClassInfo of the non-class sections (the readers by name, ``LearningRate``,
    ``OptimizerBuilder``); ``references`` are top-level keys whose value names a section to
    reach (v0.1's ``train_feed: FasterRCNNTrainFeed``).
    """
    out: dict[str, Value] = {}
    consumed: set[str] = set()  # top-level keys read through __shared__
    reached: set[str] = set()

    def put(path: str, value: Any, explicit: bool) -> None:
        if isinstance(value, tuple):
            value = list(value)
        out[path] = Value(value, explicit)

    def plain(path: str, value: Any, explicit: bool) -> None:
        """A value no class reads further: dicts are flattened key by key."""
        if isinstance(value, dict) and value:
            for k, v in value.items():
                plain(f"{path}.{k}", v, explicit)
        else:
            put(path, value, explicit)

    def section(info: ClassInfo | None, path: str, given: dict | None) -> None:
        given = dict(given or {})
        if info is None:
            if given:
                plain(path, given, True)
            return
        args = {k: (v, False) for k, v in info.defaults.items()}
        for k in info.shared:
            if k not in given and k in cfg:
                args[k] = (cfg[k], True)
                consumed.add(k)
        args.update({k: (v, True) for k, v in given.items()})
        for k, (v, explicit) in args.items():
            argument(info, f"{path}.{k}", k, v, explicit)

    def argument(owner: ClassInfo, path: str, key: str, v: Any, explicit: bool) -> None:
        if key in TRANSFORM_LISTS and isinstance(v, list):
            operators(path, v, explicit)
            return
        if key == "schedulers" and isinstance(v, list):
            operators(path, v, explicit)
            return
        if isinstance(v, dict):
            cls = v.get("name") or v.get("type") or owner.nested.get(key)
            info = table(cls) if isinstance(cls, str) else None
            if info is not None:
                for tag in ("name", "type"):
                    if tag in v:
                        put(f"{path}.{tag}", v[tag], explicit)
                inner = {k: x for k, x in v.items() if k not in ("name", "type")}
                section_nested(info, path, inner, explicit)
                return
            plain(path, v, explicit)
            return
        if isinstance(v, str) and table(v) is not None and v not in reached:
            put(path, v, explicit)
            reached.add(v)
            section(table(v), v, cfg.get(v))
            return
        put(path, v, explicit)

    def section_nested(info: ClassInfo, path: str, given: dict, explicit: bool) -> None:
        """A helper object built from a mapping: given keys keep the mapping's provenance."""
        args = {k: (v, False) for k, v in info.defaults.items()}
        for k in info.shared:
            if k not in given and k in cfg:
                args[k] = (cfg[k], True)
                consumed.add(k)
        args.update({k: (v, explicit) for k, v in given.items()})
        for k, (v, ex) in args.items():
            argument(info, f"{path}.{k}", k, v, ex)

    def operators(path: str, items: list, explicit: bool) -> None:
        seen: dict[str, int] = {}
        names = []
        for name, args in _op_items(items, path):
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            names.append(name)
            section_nested(table(name) or ClassInfo(), f"{path}.{label}", args, explicit)
        put(path, names, explicit)

    arch = cfg.get("architecture")
    put("architecture", arch, True)
    if isinstance(arch, str):
        reached.add(arch)
        section(table(arch), arch, cfg.get(arch))
    for name in DATASETS:
        if isinstance(cfg.get(name), dict):
            given = dict(cfg[name])
            cls = given.pop("name", None)
            put(f"{name}.name", cls, True)
            section(table(cls) if cls else None, name, given)
    for name in (*READERS, "LearningRate", "OptimizerBuilder"):
        if name in cfg or name in top_level:
            section(top_level.get(name), name, cfg.get(name))
    for key in references:
        if isinstance(cfg.get(key), str):
            argument(ClassInfo(), key, key, cfg[key], True)
    done = set(DATASETS) | set(READERS) | {"LearningRate", "OptimizerBuilder", "architecture"}
    for key, value in cfg.items():
        if key in done or key in reached or key in consumed or key in references:
            continue
        plain(key, value, True)  # a plain value, or a class section nothing reaches: as it is
    return out


# ---------------------------------------------------------------- comparing
def same(a: Any, b: Any) -> bool:
    """Equal as config values: numbers by value (1 == 1.0, 1e-9 relative), lists item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@dataclass(frozen=True)
class Difference:
    key: str
    ours: Any
    upstream: Any

    def __str__(self) -> str:
        return f"{self.key}: ours {self.ours!r}, upstream {self.upstream!r}"


def differences(ours: dict[str, Value], upstream: dict[str, Value]) -> list[Difference]:
    """Keys whose values differ. A key only upstream counts (ours: ``ABSENT``); a key only ours
    counts when our config sets it (a default of an argument upstream lacks does not)."""
    out = []
    for key in sorted(set(ours) | set(upstream)):
        o, u = ours.get(key), upstream.get(key)
        if o is not None and u is not None:
            if not same(o.value, u.value):
                out.append(Difference(key, o.value, u.value))
        elif u is not None:
            out.append(Difference(key, ABSENT, u.value))
        elif o.explicit:
            out.append(Difference(key, o.value, ABSENT))
    return out


ANY = "<any>"  # an allow-list value that matches every value


@dataclass
class AllowEntry:
    """One allow-list entry: config and key are glob patterns (fnmatch); ours / upstream are
    the exact values (``<absent>``: the key is missing on that side; ``<any>``: any value)."""

    config: str
    key: str
    ours: Any
    upstream: Any
    reason: str
    against: str = "2.6"  # which PaddleDetection: "2.6" or "0.1"
    used: int = 0

    def matches(self, config: str, diff: Difference, against: str) -> bool:
        return (
            against == self.against
            and fnmatch.fnmatchcase(config, self.config)
            and fnmatch.fnmatchcase(diff.key, self.key)
            and (self.ours == ANY or same(self.ours, diff.ours))
            and (self.upstream == ANY or same(self.upstream, diff.upstream))
        )


def load_allow_list(entries: list[dict]) -> list[AllowEntry]:
    out = []
    for i, e in enumerate(entries):
        missing = {"config", "key", "ours", "upstream", "reason"} - set(e)
        if missing or not str(e.get("reason", "")).strip():
            raise ValueError(f"allow-list entry {i}: needs config, key, ours, upstream, reason")
        against = str(e.get("against", "2.6"))
        if against not in ("2.6", "0.1"):
            raise ValueError(f"allow-list entry {i}: against must be 2.6 or 0.1, got {against}")
        out.append(
            AllowEntry(e["config"], e["key"], e["ours"], e["upstream"], e["reason"], against)
        )
    return out


def unexplained(
    config: str, diffs: list[Difference], allow: list[AllowEntry], against: str = "2.6"
) -> list[Difference]:
    """The differences no allow-list entry explains (and count each entry's uses)."""
    left = []
    for d in diffs:
        hits = [e for e in allow if e.matches(config, d, against)]
        for e in hits:
            e.used += 1
        if not hits:
            left.append(d)
    return left
