"""Load weights into a model and report what happened, name by name.

Every load prints one report: loaded / shape-mismatched / missing / unused. ``strict=True``
(eval, infer, resume) turns any mismatch or missing parameter into an error naming them;
``strict=False`` (fine-tuning, pretrained backbones) skips them and says so.
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

    def summary(self, limit: int = 8) -> str:
        def names(items: list) -> str:
            shown = ", ".join(str(i) for i in items[:limit])
            more = f", ... (+{len(items) - limit})" if len(items) > limit else ""
            return f" [{shown}{more}]" if items else ""

        mism = [f"{n} {tuple(a)}->{tuple(b)}" for n, a, b in self.mismatched]
        return (
            f"weights {self.path}: loaded {len(self.loaded)}, shape-mismatched "
            f"{len(self.mismatched)}{names(mism)}, missing {len(self.missing)}"
            f"{names(self.missing)}, unused {len(self.unused)}{names(self.unused)}"
        )


def weights_file(path: str) -> str:
    """``path`` itself, or ``path + ".pdparams"`` (PaddleDetection's prefix convention)."""
    if os.path.isfile(path):
        return path
    if os.path.isfile(path + ".pdparams"):
        return path + ".pdparams"
    raise WeightsError(f"weights not found: {path} (nor {path}.pdparams)")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The ``{name: array}`` saved in a ``.pdparams`` file, read without running its code."""
    path = weights_file(path)
    try:
        state = safe_load(path)
    except pickle.UnpicklingError as e:  # code in the pickle, HTML page, truncated, ...
        raise WeightsError(str(e).splitlines()[0]) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of parameters, found {type(state).__name__}")
    # paddle.save may add name-mapping entries that are not weights
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


def load_weights(
    model: paddle.nn.Layer, path: str, strict: bool = True, quiet: bool = False
) -> LoadReport:
    """Copy matching parameters from the file ``path`` into ``model``; print the report."""
    path = weights_file(path)
    return load_state_dict(model, read_state_dict(path), path, strict=strict, quiet=quiet)


def load_state_dict(
    model: paddle.nn.Layer, state: dict, source: str, strict: bool = True, quiet: bool = False
) -> LoadReport:
    """Copy matching entries of ``state`` ({name: array}) into ``model``; return the report.

    ``source`` names where ``state`` came from, for the report and errors.
    """
    own = model.state_dict()
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
    report = LoadReport(source, loaded, mismatched, missing, unused)
    if not quiet:
        print(report.summary())
    if strict and (mismatched or missing):
        raise WeightsError(
            f"{source} does not fit this model: {report.summary().split(': ', 1)[1]}; "
            "check that the config matches the checkpoint"
        )
    for name, value in to_set.items():
        own[name].set_value(value)
    return report
