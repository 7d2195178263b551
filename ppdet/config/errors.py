"""The one error type of the config layer: a single line naming file, key path and fix."""

from ppdet.errors import PpdetError


class ConfigError(PpdetError, ValueError):
    """A bad config: message is one line, ``<file>: <key.path>: <what is wrong>``."""
