"""The one error type of the config layer: a single line naming file, key path and fix."""


class ConfigError(ValueError):
    """A bad config: message is one line, ``<file>: <key.path>: <what is wrong>``."""
