"""Checkpoint files on disk: find them, read them without running code, write safetensors.

Formats: ``.pdparams`` (a pickle of ``{name: array}``, read by the restricted unpickler of
``ppdet.checkpoint.safe_pickle``), ``.safetensors`` (header + raw tensors: reading runs no
code), and a published model's folder (``model.safetensors`` / ``model.pdparams`` inside).
Legacy v0.1 variable folders are the zoo's business (``ppdet.zoo.weights.read_weights``).
"""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np

from ppdet.atomic_io import atomic_path
from ppdet.checkpoint.report import WeightsError
from ppdet.checkpoint.safe_pickle import safe_load

__all__ = [
    "FOLDER_FILES",
    "checkpoint_header_problem",
    "read_safetensors",
    "read_state_dict",
    "weights_file",
    "write_safetensors",
]

FOLDER_FILES = ("model.safetensors", "model.pdparams")  # in a published folder, preferred first
PICKLE_SUFFIXES = (".pdparams", ".pdopt", ".pdstates")
SAFETENSORS_MAX_HEADER = 100 << 20  # bytes; the format's own limit


def weights_file(path: str) -> str:
    """``path`` itself, or ``path + ".pdparams"`` (PaddleDetection's prefix convention)."""
    if os.path.exists(path):
        return path
    if os.path.isfile(path + ".pdparams"):
        return path + ".pdparams"
    raise WeightsError(f"weights not found: {path} (nor {path}.pdparams)")


def checkpoint_header_problem(head: bytes, name: str, size: int) -> str | None:
    """Why the file ``name`` (``size`` bytes, starting with ``head``) cannot be the checkpoint its
    suffix says, or None. Judged by the first bytes only: a pickle starts with the PROTO opcode
    (``0x80``, protocol 2..5); a safetensors file with an 8-byte little-endian header length
    and a JSON ``{``. Files with other suffixes are not judged (None)."""
    lowered = name.lower()
    if lowered.endswith(PICKLE_SUFFIXES):
        if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
            return "not a pickled checkpoint (it does not start with a pickle header)"
        return None
    if lowered.endswith(".safetensors"):
        if len(head) < 9:
            return "too short for a safetensors file"
        (length,) = struct.unpack("<Q", head[:8])
        if length > SAFETENSORS_MAX_HEADER or 8 + length > size or head[8:9] != b"{":
            return "not a safetensors file (bad header)"
        return None
    return None


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The ``{name: array}`` in a ``.pdparams`` / ``.safetensors`` file (or a prefix of one, or a
    published model's folder), read without running code. Raises WeightsError in one line."""
    path = weights_file(path)
    if os.path.isdir(path):
        inner = [os.path.join(path, n) for n in FOLDER_FILES]
        found = [p for p in inner if os.path.isfile(p)]
        if not found:
            raise WeightsError(
                f"{path}: a directory without weights (no {' or '.join(FOLDER_FILES)})"
            )
        path = found[0]
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    try:
        state = safe_load(path)
    except pickle.UnpicklingError as e:  # code in the pickle, HTML page, truncated, ...
        raise WeightsError(str(e).splitlines()[0]) from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror or e})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of parameters, found {type(state).__name__}")
    # paddle.save may add name-mapping entries that are not weights
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """``{name: array}`` of a safetensors file; a damaged file is a one-line WeightsError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(
            f"{path}: not a readable safetensors file ({e}); delete it and fetch it again"
        ) from None


def write_safetensors(
    state: dict[str, np.ndarray], path: str, metadata: dict[str, str] | None = None
) -> str:
    """Write ``state`` ({name: array}) to ``path`` atomically; ``metadata``: strings in the header."""
    import safetensors.numpy

    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in state.items()}
    with atomic_path(path) as tmp:
        safetensors.numpy.save_file(arrays, tmp, metadata=metadata)
    return path
