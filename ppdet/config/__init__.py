"""Config: safe YAML with ``_BASE_`` includes and ``-o`` overrides, validation, registries."""

from .builder import build_spec, create
from .errors import ConfigError
from .loader import Config, apply_override, dump_config, load_config, merge, parse_override
from .registry import register
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
    "validate_config",
]
