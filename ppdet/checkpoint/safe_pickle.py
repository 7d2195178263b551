"""Read ``.pdparams`` pickles without running code from them.

A ``.pdparams`` file is a pickle, and unpickling can call any importable function. The
unpickler here resolves only what ``paddle.save`` of a state dict needs (numpy arrays, their
dtypes and scalars, OrderedDict; plain dicts, lists, strings and numbers need no lookup) and
refuses every other global with an error naming the file and the global.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from ppdet.errors import PpdetError

ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),  # numpy 1.x pickles
        ("numpy._core.multiarray", "_reconstruct"),  # numpy 2.x pickles
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("builtins", "tuple"),  # paddle.save writes nested tensors as (name, array) tuples
        ("_codecs", "encode"),  # bytes in protocol-2 pickles
    }
)


class UnsafeCheckpointError(PpdetError, pickle.UnpicklingError):
    """A checkpoint that asks for something other than arrays and plain values."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeCheckpointError(
            f"{self.path}: refused to load: the file asks for {module}.{name}, which a weights "
            "file never needs (only arrays and plain values are accepted); do not use this file"
        )


def _describe_non_pickle(head: bytes) -> str | None:
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "an HTML/XML page (a download error page?), not a checkpoint"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive, not a .pdparams file (extract it first)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, not a .pdparams file (extract it first)"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive, not a .pdparams file (extract it first)"
    return None


def tensors_as_arrays(obj: Any) -> Any:
    """Replace the ``(name, array)`` pairs paddle.save writes for nested tensors by the arrays."""
    if isinstance(obj, dict):
        return type(obj)((k, tensors_as_arrays(v)) for k, v in obj.items())
    if (
        isinstance(obj, tuple)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], np.ndarray)
    ):
        return obj[1]
    if isinstance(obj, list):
        return [tensors_as_arrays(v) for v in obj]
    return obj


def safe_load(path: str) -> Any:
    """Unpickle ``path`` allowing only arrays and plain values; one-line errors otherwise."""
    with open(path, "rb") as f:
        head = f.read(512)
        problem = _describe_non_pickle(head)
        if problem:
            raise pickle.UnpicklingError(f"{path}: {problem}")
        f.seek(0)
        try:
            return _RestrictedUnpickler(f, path).load()
        except UnsafeCheckpointError:
            raise
        except EOFError:
            raise pickle.UnpicklingError(
                f"{path}: truncated (the file ends early); download it again"
            ) from None
        except pickle.UnpicklingError as e:
            if "truncated" in str(e):
                raise pickle.UnpicklingError(
                    f"{path}: truncated (the file ends early); download it again"
                ) from None
            raise pickle.UnpicklingError(f"{path}: not a readable pickle ({e})") from None
        except Exception as e:
            raise pickle.UnpicklingError(
                f"{path}: not a readable pickle ({type(e).__name__}: {e})"
            ) from None
