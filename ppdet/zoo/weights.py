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
from ppdet.zoo import behaviour

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
    return _read(path)[0]


def _read(path: str, quiet: bool = False) -> tuple[dict[str, np.ndarray], str | None]:
    """(state, the legacy record key when ``path`` is a converted v0.1 checkpoint, else None)."""
    path = _weights_file(path)
    if _is_legacy_candidate(path):
        from ppdet.zoo import legacy

        if legacy.is_legacy(path):
            try:
                state, report = legacy.convert(path)
            except legacy.LegacyError as e:
                raise WeightsError(str(e)) from None
            if not quiet:
                print(report.summary())
            return state, report.model
        what = "a directory" if os.path.isdir(path) else "a tarball"
        raise WeightsError(
            f"{path}: {what} without weights (no model.safetensors, model.pdparams nor v0.1 "
            "variable files)"
        )
    return read_state_dict(path), None


def _is_legacy_candidate(path: str) -> bool:
    """A folder without a published model's files, or a ``.tar``: maybe v0.1 variables."""
    if os.path.isdir(path):
        return not any(
            os.path.isfile(os.path.join(path, n)) for n in ("model.safetensors", "model.pdparams")
        )
    return path.endswith((".tar", ".tar.gz", ".tgz"))


def _is_local(ref: str) -> bool:
    """A reference that names a local file (never looked up in the zoo)."""
    if "://" in ref:
        return False
    if os.sep in ref or "/" in ref or ref.endswith((".pdparams", ".safetensors")):
        return True
    return os.path.exists(ref) or os.path.isfile(ref + ".pdparams")


def resolve(ref: str, index=None) -> str:
    """The local checkpoint for ``ref`` (a path is returned as is; anything else is fetched
    with the zoo ``index``, default the package's)."""
    if _is_local(ref):
        return _weights_file(ref)  # a local path: no zoo lookup for a typo
    from ppdet.zoo.archive import ArchiveError
    from ppdet.zoo.download import DownloadError
    from ppdet.zoo.fetch import FetchError, fetch
    from ppdet.zoo.index import ZooIndexError

    try:
        return fetch(ref, index=index)
    except (DownloadError, ArchiveError, FetchError, ZooIndexError) as e:
        raise WeightsError(str(e)) from None


def load_weights(
    model, ref: str, strict: bool = True, quiet: bool = False, index=None
) -> LoadReport:
    """Copy matching parameters from the checkpoint ``ref`` into ``model``; print the report.

    ``ref`` may be a local file, a prefix, a URL, ``ppdet://...`` or a zoo model name: it is
    resolved (downloaded, verified, cached, extracted) by ``ppdet.zoo.fetch`` first. Weights the
    model cannot run as published (a ``planned`` zoo entry; a v0.1 checkpoint whose record needs
    fluid-era behaviour the model lacks, see ``ppdet.zoo.behaviour``) are refused by a strict
    load and loaded with a warning by a lenient one; a strict load whose parameters do not fit
    names the config the weights belong to (the zoo entry's, or the v0.1 record's). ``index``:
    the zoo index (default: the package's).
    """
    entry = None if _is_local(ref) else behaviour.entry_for_ref(ref, index)
    behaviour.check_planned(
        model, entry, strict, index, quiet
    )  # before a download of unusable weights
    path = _weights_file(resolve(ref, index))
    state, legacy_key = _read(path, quiet)
    key = legacy_key
    if legacy_key is not None:
        key = entry.legacy if entry is not None and entry.legacy else legacy_key
        if entry is None or not entry.planned:  # a planned entry was judged above
            behaviour.check_legacy(model, key, path, strict, index, quiet)
    try:
        return load_state_dict(model, state, path, strict=strict, quiet=quiet)
    except WeightsError as e:  # the parameters do not fit: name the config that they fit
        hint = behaviour.config_hint(entry, key, index)
        if not hint:
            raise
        raise WeightsError(f"{e}: {hint}") from None
