"""Errors of the data pipeline, each a single line that names the file at fault."""

from __future__ import annotations


class DatasetError(RuntimeError):
    """A dataset that cannot be used at all (e.g. no usable image in its annotation file)."""


class ImageDecodeError(RuntimeError):
    """An image file that is missing, unreadable or truncated; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
