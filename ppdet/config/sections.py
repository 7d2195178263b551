"""Load-time checks for top-level sections that are not registered classes.

``LearningRate`` and ``OptimizerBuilder`` are read by ppdet/engine/optim.py, which knows their
keys; it registers a check for each:

    @section_check("LearningRate")
    def check_lr_section(section: dict) -> None: ...   # ConfigError("LearningRate.x: ...")

``validate_config`` runs every registered check on the loaded config and prefixes the file that
set the section, so a mistake there fails when the config is loaded, like one in a class
section, not at the first training step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .loader import source_of

_CHECKS: dict[str, Callable[[Any], None]] = {}


def section_check(name: str):
    """Decorator: run ``fn(cfg[name])`` whenever a config with section ``name`` is validated."""

    def wrap(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        _CHECKS[name] = fn
        return fn

    return wrap


def check_sections(cfg: dict) -> None:
    """Run the registered checks of the sections present in ``cfg``."""
    for name, check in _CHECKS.items():
        if name in cfg:
            try:
                check(cfg[name])
            except ConfigError as e:
                raise ConfigError(f"{source_of(cfg, name)}: {e}") from None
