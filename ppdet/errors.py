"""The root of ppdet's user-facing errors.

A ``PpdetError`` means bad input (a config, a dataset, an image, a weights file, a download),
not a bug: its message is one line that names the file, key or URL at fault and what to do.
Tools print it as ``error: <message>`` and exit with status 1 (``ppdet.engine.cli.run``); any
other exception is a bug and keeps its traceback.
"""


class PpdetError(Exception):
    """Base of every user-facing error (ConfigError, DataError, ...)."""
