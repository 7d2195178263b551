"""Load weights into a model and report what happened, name by name.

Every load prints one report: loaded / shape-mismatched / missing / unused (and an ImageNet
classifier skipped). ``strict=True`` (eval, infer, resume) needs every parameter under its exact
name and turns any mismatch or missing parameter into an error naming them; ``strict=False``
(fine-tuning, pretrained backbones) matches names the PaddleDetection way (see
``ppdet.zoo.pretrained``), skips what does not fit and says so.

Readable formats: ``.pdparams`` (a pickle, read by a restricted unpickler that runs no code),
``.safetensors``, and legacy v0.1 checkpoints (a fluid variable directory or its tarball).
"""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import paddle

from ppdet.zoo.safe_pickle import safe_load


class WeightsError(RuntimeError):
    """A checkpoint that cannot be used: one line naming the file and the problem."""


@dataclasses.dataclass
class LoadReport:
    path: str
    loaded: list[str]
    mismatched: list[tuple[str, tuple, tuple]]  # name, checkpoint shape, model shape
    missing: list[str]
    unused: list[str]
    skipped: list[str] = dataclasses.field(default_factory=list)  # an ImageNet classifier

    def summary(self, limit: int = 8) -> str:
        def names(items: list) -> str:
            shown = ", ".join(str(i) for i in items[:limit])
            more = f", ... (+{len(items) - limit})" if len(items) > limit else ""
            return f" [{shown}{more}]" if items else ""

        mism = [f"{n} {tuple(a)}->{tuple(b)}" for n, a, b in self.mismatched]
        text = (
            f"weights {self.path}: loaded {len(self.loaded)}, shape-mismatched "
            f"{len(self.mismatched)}{names(mism)}, missing {len(self.missing)}"
            f"{names(self.missing)}, unused {len(self.unused)}{names(self.unused)}"
        )
        if self.skipped:
            text += f", classifier skipped {len(self.skipped)}{names(self.skipped)}"
        return text


def weights_file(path: str) -> str:
    """``path`` itself, or ``path + ".pdparams"`` (PaddleDetection's prefix convention)."""
    if os.path.exists(path):
        return path
    if os.path.isfile(path + ".pdparams"):
        return path + ".pdparams"
    raise WeightsError(f"weights not found: {path} (nor {path}.pdparams)")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The ``{name: array}`` in a checkpoint file or legacy directory, read without running code."""
    path = weights_file(path)
    if os.path.isdir(path):  # a published model's folder holds model.safetensors / model.pdparams
        for inner in ("model.safetensors", "model.pdparams"):
            if os.path.isfile(os.path.join(path, inner)):
                path = os.path.join(path, inner)
                break
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if os.path.isdir(path) or path.endswith((".tar", ".tar.gz", ".tgz")):
        from ppdet.zoo import legacy

        if not legacy.is_legacy(path):
            raise WeightsError(
                f"{path}: a directory without weights (no .pdparams, no legacy variable files)"
            )
        try:
            state, report = legacy.convert(path)
        except legacy.LegacyError as e:
            raise WeightsError(str(e)) from None
        print(report.summary() if hasattr(report, "summary") else report)
        return state
    try:
        state = safe_load(path)
    except pickle.UnpicklingError as e:  # code in the pickle, HTML page, truncated, ...
        raise WeightsError(str(e).splitlines()[0]) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of parameters, found {type(state).__name__}")
    # paddle.save may add name-mapping entries that are not weights
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(
            f"{path}: not a readable safetensors file ({e}); delete it and fetch it again"
        ) from None


def load_weights(
    model: paddle.nn.Layer, path: str, strict: bool = True, quiet: bool = False
) -> LoadReport:
    """Copy matching parameters from the checkpoint ``path`` into ``model``; print the report.

    ``path`` may be a local file, a prefix, a URL, ``ppdet://...`` or a zoo model name: it is
    resolved (downloaded, verified, cached, extracted) by ``ppdet.zoo.fetch`` first.
    """
    path = weights_file(resolve(path))
    return load_state_dict(model, read_state_dict(path), path, strict=strict, quiet=quiet)


def resolve(ref: str) -> str:
    """The local checkpoint for ``ref`` (a path is returned as is; anything else is fetched)."""
    remote = "://" in ref
    if not remote and (os.sep in ref or "/" in ref or ref.endswith((".pdparams", ".safetensors"))):
        return weights_file(ref)  # a local path: no zoo lookup for a typo
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


def load_state_dict(
    model: paddle.nn.Layer, state: dict, source: str, strict: bool = True, quiet: bool = False
) -> LoadReport:
    """Copy ``state`` ({name: array}) into ``model``; return the report.

    strict: exact names, and every model parameter must be present with its shape.
    Otherwise names are matched leniently (``ppdet.zoo.pretrained``). ``source`` names where
    ``state`` came from, for the report and errors.
    """
    own = model.state_dict()
    if strict:
        report, to_set = _exact(own, state, source)
    else:
        from ppdet.zoo.pretrained import fit_state_dict

        report, to_set = fit_state_dict(own, state, source)
    if not quiet:
        print(report.summary())
    if strict and (report.mismatched or report.missing):
        raise WeightsError(
            f"{source} does not fit this model: {report.summary().split(': ', 1)[1]}; "
            "check that the config matches the checkpoint"
        )
    for name, value in to_set.items():
        own[name].set_value(value)
    return report


def _exact(own: dict, state: dict, source: str) -> tuple[LoadReport, dict]:
    loaded, mismatched, to_set = [], [], {}
    for name, target in own.items():
        if name not in state:
            continue
        value = np.asarray(state[name])
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append((name, tuple(value.shape), tuple(target.shape)))
            continue
        to_set[name] = value.astype(str(target.dtype).replace("paddle.", ""), copy=False)
        loaded.append(name)
    missing = [n for n in own if n not in state]
    unused = [n for n in state if n not in own]
    return LoadReport(source, loaded, mismatched, missing, unused), to_set
