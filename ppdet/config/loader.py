"""Load a YAML config: safe YAML, ``_BASE_`` includes, ``-o key=value`` overrides.

The result is a :class:`Config`: a plain nested dict plus ``sources``, which remembers for
each top-level key the file (or ``-o``) that last set it, so later errors can name the file.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from typing import Any

import yaml

from .errors import ConfigError

BASE_KEY = "_BASE_"


class Config(dict):
    """Resolved config: nested dicts/lists of plain values. ``sources[key]`` = file that set it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sources: dict[str, str] = {}
        self.path: str = ""

    def source_of(self, key_path: str) -> str:
        """The file that set the top-level key of ``key_path`` (``"?"`` when unknown)."""
        top = key_path.split(".", 1)[0].split("[", 1)[0]
        return self.sources.get(top, self.path or "?")

    def copy(self) -> Config:
        new = Config(copy.deepcopy(dict(self)))
        new.sources = dict(self.sources)
        new.path = self.path
        return new


def source_of(cfg: dict, key_path: str) -> str:
    """The file that set the top-level key of ``key_path``; "config" for a plain dict."""
    return cfg.source_of(key_path) if isinstance(cfg, Config) else "config"


def _read_yaml(path: str, included_from: str | None) -> dict:
    if not os.path.isfile(path):
        where = f"{included_from}: {BASE_KEY}: " if included_from else ""
        raise ConfigError(f"{where}config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{line}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def merge(base: dict, update: dict) -> dict:
    """Deep-merge ``update`` into ``base`` (in place): dicts merge, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _load_file(path: str, stack: tuple[str, ...], included_from: str | None) -> Config:
    path = os.path.abspath(path)
    if path in stack:
        chain = " -> ".join(os.path.basename(p) for p in stack + (path,))
        raise ConfigError(f"{stack[-1]}: {BASE_KEY}: include cycle: {chain}")
    data = _read_yaml(path, included_from)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY}: must be a list of file paths")
    cfg = Config()
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), os.path.expanduser(base))
        base_cfg = _load_file(base_path, stack + (path,), path)
        merge(cfg, base_cfg)
        cfg.sources.update(base_cfg.sources)
    merge(cfg, data)
    cfg.sources.update({key: path for key in data})
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.0.c=[1, 2]"`` -> (["a", "b", "0", "c"], [1, 2]); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"-o {text}: an override must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"-o {text}: empty key in key path {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # a bare string such as a path with odd characters
    return key.split("."), value


def _list_index(items: list, part: str, done: str) -> int:
    """Index into a list by number, or by the name of a one-key item (``{Resize: {...}}``)."""
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(
                f"-o {done}: index {index} out of range (list has {len(items)} items)"
            )
        return index
    for index, item in enumerate(items):
        if isinstance(item, dict) and (part in item or item.get("name") == part):
            return index
    raise ConfigError(f"-o {done}: no list item named {part!r}")


def apply_override(cfg: Config, parts: list[str], value: Any) -> None:
    """Set ``cfg[parts[0]][parts[1]]... = value``; list items are reached by index or name."""
    node: Any = cfg
    for depth, part in enumerate(parts):
        done = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part, done)
            item = node[index]
            # {Resize: {...}}: addressing the item by name steps into its arguments
            if not part.lstrip("-").isdigit() and isinstance(item, dict) and part in item:
                if last:
                    item[part] = value
                    return
                if item[part] is None:
                    item[part] = {}
                node = item[part]
                continue
            if last:
                node[index] = value
                return
            node = item
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"-o {done}: cannot set a key inside a {type(node).__name__} value")


def load_config(path: str, overrides: Iterable[str] = ()) -> Config:
    """Read ``path`` (merging its ``_BASE_`` files) and apply ``overrides`` (``"a.b=1"``)."""
    cfg = _load_file(path, (), None)
    cfg.path = os.path.abspath(path)
    for text in overrides or ():
        parts, value = parse_override(text)
        apply_override(cfg, parts, value)
        cfg.sources[parts[0]] = "-o"
    return cfg


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML text (keys in insertion order)."""
    return yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None, width=100)
