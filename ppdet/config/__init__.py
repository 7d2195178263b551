"""Config: safe YAML with ``_BASE_`` includes and ``-o`` overrides, validation, registries.

``readers.py`` is the schema of the dataset and reader sections, ``sections.py`` the hook for
other sections' load-time checks (LearningRate, OptimizerBuilder), ``compat.py`` the
PaddleDetection keys accepted and ignored with a note.
"""

from .builder import build_spec, create
from .errors import ConfigError
from .loader import (
    Config,
    apply_override,
    dump_config,
    load_config,
    merge,
    parse_override,
    source_of,
)
from .registry import register
from .sections import section_check
from .validate import validate_config

__all__ = [
    "Config",
    "ConfigError",
    "apply_override",
    "build_spec",
    "create",
    "dump_config",
    "load_config",
    "merge",
    "parse_override",
    "register",
    "section_check",
    "source_of",
    "validate_config",
]
