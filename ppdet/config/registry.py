"""Registries of buildable classes, one per role.

A class registers itself with ``@register("backbone")``; configs then name it by its class
name (``backbone: DarkNet``). Names are unique across roles so that a config section
``DarkNet: {...}`` is unambiguous.
"""

from __future__ import annotations

import difflib

ROLES = (
    "architecture",
    "backbone",
    "neck",
    "head",
    "loss",
    "postprocess",
    "dataset",
    "transform",
    "batch_transform",
    "evaluator",
)

_REGISTRY: dict[str, dict[str, type]] = {role: {} for role in ROLES}


def register(role: str):
    """Class decorator: ``@register("neck") class YOLOv3FPN(nn.Layer): ...``."""
    if role not in _REGISTRY:
        raise ValueError(f"unknown registry role {role!r}; known roles: {', '.join(ROLES)}")

    def wrap(cls: type) -> type:
        name = cls.__name__
        for other_role, classes in _REGISTRY.items():
            if name in classes and classes[name] is not cls:
                raise ValueError(f"class name {name!r} is already registered as a {other_role}")
        _REGISTRY[role][name] = cls
        return cls

    return wrap


def all_names(role: str | None = None) -> list[str]:
    """Registered class names, of one role or of all roles."""
    roles = [role] if role else list(ROLES)
    return sorted(name for r in roles for name in _REGISTRY[r])


def is_registered(name: object) -> bool:
    return isinstance(name, str) and any(name in classes for classes in _REGISTRY.values())


def lookup(name: str, role: str | None = None) -> type:
    """The registered class called ``name``; KeyError with a did-you-mean hint otherwise."""
    roles = [role] if role else list(ROLES)
    for r in roles:
        if name in _REGISTRY[r]:
            return _REGISTRY[r][name]
    known = all_names(role)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    what = f"{role} class" if role else "class"
    raise KeyError(f"unknown {what} {name!r}{hint}")
