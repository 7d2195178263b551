"""Errors of the data pipeline, each a single line that names the file at fault.

``DataError`` is the common base (a ``ppdet.PpdetError``): tools print it as one line and exit.
"""

from __future__ import annotations

import traceback

from ppdet.errors import PpdetError


class DataError(PpdetError, RuntimeError):
    """Base of the data errors below."""


class DatasetError(DataError):
    """A dataset that cannot be used at all (e.g. no usable image in its annotation file)."""


class DataNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder that does not exist; the message says how to get it."""


class ImageDecodeError(DataError):
    """An image file that is missing, unreadable, cut, too large or not an image; ``path``
    names it, ``reason`` says why (e.g. ``truncated JPEG``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # picklable across loader worker processes
        return type(self), (self.path, self.reason)


class DataPipelineError(DataError):
    """An exception raised while a batch was being loaded, re-raised in the loop that asked for
    the batch (paddle's single-process loader would otherwise wait forever). The first line
    names the original error; for an exception that is not a DataError its traceback follows."""


def exception_text(exc: BaseException) -> str:
    """Text that carries ``exc`` across the loader: one line for a DataError (a user-facing
    problem such as an unreadable image), the full traceback for anything else (a bug)."""
    if isinstance(exc, DataError):
        return f"{type(exc).__name__}: {exc}"
    return "".join(traceback.format_exception(exc)).rstrip()
