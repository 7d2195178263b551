"""Load weights named by any reference (path, URL, ``ppdet://``, zoo name) into a model.

``load_weights(model, ref, strict)`` resolves ``ref`` with ``ppdet.zoo.fetch`` (download,
verify, cache, extract), reads it with :func:`read_weights` (``.pdparams`` / ``.safetensors`` /
a published folder through ``ppdet.checkpoint``, or a legacy v0.1 directory/tarball converted
by ``ppdet.zoo.legacy``) and copies it into the model with ``ppdet.checkpoint.load_state_dict``
(strict for eval, infer and resume; lenient for fine-tuning), printing one report line.

``WeightsError``, ``LoadReport`` and ``load_state_dict`` are re-exported from
``ppdet.checkpoint`` for callers that import them from here.
"""

from __future__ import annotations

import os

import numpy as np

from ppdet.checkpoint import LoadReport, WeightsError, load_state_dict, read_state_dict
from ppdet.checkpoint import weights_file as _weights_file

__all__ = [
    "LoadReport",
    "WeightsError",
    "load_state_dict",
    "load_weights",
    "read_weights",
    "resolve",
]


def read_weights(path: str) -> dict[str, np.ndarray]:
    """The ``{name: array}`` in a checkpoint file, published folder or legacy v0.1 checkpoint."""
    path = _weights_file(path)
    if _is_legacy_candidate(path):
        from ppdet.zoo import legacy

        if legacy.is_legacy(path):
            try:
                state, report = legacy.convert(path)
            except legacy.LegacyError as e:
                raise WeightsError(str(e)) from None
            print(report.summary())
            return state
        what = "a directory" if os.path.isdir(path) else "a tarball"
        raise WeightsError(
            f"{path}: {what} without weights (no model.safetensors, model.pdparams nor v0.1 "
            "variable files)"
        )
    return read_state_dict(path)


def _is_legacy_candidate(path: str) -> bool:
    """A folder without a published model's files, or a ``.tar``: maybe v0.1 variables."""
    if os.path.isdir(path):
        return not any(
            os.path.isfile(os.path.join(path, n)) for n in ("model.safetensors", "model.pdparams")
        )
    return path.endswith((".tar", ".tar.gz", ".tgz"))


def resolve(ref: str) -> str:
    """The local checkpoint for ``ref`` (a path is returned as is; anything else is fetched)."""
    remote = "://" in ref
    if not remote and (os.sep in ref or "/" in ref or ref.endswith((".pdparams", ".safetensors"))):
        return _weights_file(ref)  # a local path: no zoo lookup for a typo
    if not remote and (os.path.exists(ref) or os.path.isfile(ref + ".pdparams")):
        return ref
    from ppdet.zoo.archive import ArchiveError
    from ppdet.zoo.download import DownloadError
    from ppdet.zoo.fetch import FetchError, fetch
    from ppdet.zoo.index import ZooIndexError

    try:
        return fetch(ref)
    except (DownloadError, ArchiveError, FetchError, ZooIndexError) as e:
        raise WeightsError(str(e)) from None


def load_weights(model, ref: str, strict: bool = True, quiet: bool = False) -> LoadReport:
    """Copy matching parameters from the checkpoint ``ref`` into ``model``; print the report.

    ``ref`` may be a local file, a prefix, a URL, ``ppdet://...`` or a zoo model name: it is
    resolved (downloaded, verified, cached, extracted) by ``ppdet.zoo.fetch`` first.
    """
    path = _weights_file(resolve(ref))
    return load_state_dict(model, read_weights(path), path, strict=strict, quiet=quiet)
