"""Build registered classes from config sections, checking every key against the constructor.

``create("DarkNet", {"depth": 53}, cfg=cfg)`` looks the class up in the registry, checks that
each key is a constructor argument of the right type, turns sub-component references
(``backbone: DarkNet`` or ``{name: YOLOBox, ...}``) into built objects, fills ``__shared__``
arguments from the top level of the config, and calls the constructor (or ``from_config``).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from typing import Any

from .errors import ConfigError
from .registry import is_registered, lookup

_NO_HINTS: dict[str, Any] = {}


def _signature(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """Constructor parameters (without self) and whether it accepts ``**kwargs``."""
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {
        n: p
        for n, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
    return named, var_kw


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotation: skip type checks for this class
        return _NO_HINTS


def arg_type(cls: type, name: str) -> Any:
    """The annotation of constructor argument ``name`` of ``cls`` (``inspect.Parameter.empty``
    when it has none or the annotations cannot be resolved)."""
    return _hints(cls).get(name, inspect.Parameter.empty)


def type_name(tp: Any) -> str:
    """``int``, ``list[int]``, ``str | None``: an annotation as a config user reads it."""
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def type_ok(value: Any, tp: Any) -> bool:
    """Whether a plain config value fits annotation ``tp`` (unknown annotations accept all)."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (
        list,
        tuple,
        typing.Sequence,
        __import__("collections.abc").abc.Sequence,
    ) or tp in (
        list,
        tuple,
    ):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(type_ok(v, a) for v, a in zip(value, args))
        return not args or all(type_ok(v, args[0]) for v in value)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    return True  # a class type (nn.Layer, ...): filled with a built object


def _is_spec(value: Any) -> bool:
    """A reference to a sub-component: a registered name or an inline ``{name: X, ...}``."""
    if isinstance(value, str):
        return is_registered(value)
    return isinstance(value, dict) and is_registered(value.get("name"))


def check_kwargs(cls: type, kwargs: dict, key_path: str, source: str) -> None:
    """Raise ConfigError for a key that ``cls`` does not take or a value of the wrong type."""
    params, var_kw = _signature(cls)
    hints = _hints(cls)
    for key, value in kwargs.items():
        where = f"{source}: {key_path}.{key}"
        if key not in params:
            if var_kw:
                continue
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(params) or "none"
            raise ConfigError(f"{where}: unknown key for {cls.__name__}{hint} (known: {known})")
        tp = hints.get(key, inspect.Parameter.empty)
        if tp is not str and _is_spec(value):
            continue
        if value is None and params[key].default is None:
            continue
        if not type_ok(value, tp):
            raise ConfigError(
                f"{where}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})"
            )


def _source(cfg: dict | None, key_path: str) -> str:
    if cfg is not None and hasattr(cfg, "source_of"):
        return cfg.source_of(key_path)
    return "config"


def build_spec(spec: Any, cfg: dict | None = None, key_path: str = "", **fill: Any) -> Any:
    """Build a sub-component from a name (section looked up in ``cfg``) or an inline dict.

    Already-built objects and None pass through unchanged.
    """
    if isinstance(spec, str) and is_registered(spec):
        section = (cfg or {}).get(spec) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{_source(cfg, spec)}: {spec}: must be a mapping of arguments")
        return create(spec, section, key_path=spec, cfg=cfg, **fill)
    if isinstance(spec, dict) and "name" in spec:
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return create(spec["name"], kwargs, key_path=key_path or spec["name"], cfg=cfg, **fill)
    if isinstance(spec, str):
        try:
            lookup(spec)
        except KeyError as e:
            raise ConfigError(f"{_source(cfg, key_path)}: {key_path}: {e.args[0]}") from None
    return spec


def create(
    name: str,
    kwargs: dict | None = None,
    *,
    role: str | None = None,
    key_path: str = "",
    cfg: dict | None = None,
    **fill: Any,
) -> Any:
    """Validate ``kwargs`` against registered class ``name`` and build it.

    ``fill`` gives arguments the config did not set (e.g. ``in_channels``); ``cfg`` is the
    whole config, used for sub-component sections, ``__shared__`` keys and error sources.
    """
    key_path = key_path or name
    source = _source(cfg, key_path)
    try:
        cls = lookup(name, role)
    except KeyError as e:
        raise ConfigError(f"{source}: {key_path}: {e.args[0]}") from None
    kwargs = dict(kwargs or {})
    check_kwargs(cls, kwargs, key_path, source)
    params, var_kw = _signature(cls)
    hints = _hints(cls)
    shared = getattr(cls, "__shared__", ())
    args: dict[str, Any] = {}
    for pname in params:
        if pname in kwargs:
            args[pname] = kwargs[pname]
        elif pname in fill:
            args[pname] = fill[pname]
        elif pname in shared and cfg is not None and pname in cfg:
            args[pname] = cfg[pname]
    if var_kw:
        args.update({k: v for k, v in kwargs.items() if k not in params})
    if hasattr(cls, "from_config"):
        build = functools.partial(build_spec, cfg=cfg)
        return cls.from_config(args, build)
    for pname, value in args.items():
        if hints.get(pname) is not str and _is_spec(value):
            args[pname] = build_spec(value, cfg, f"{key_path}.{pname}")
    try:
        return cls(**args)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {key_path}: {e}") from None
