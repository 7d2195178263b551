"""Copy a state dict into a model: strict (exact names) or lenient (PaddleDetection's rules).

``strict=True`` (eval, infer, resume) needs every model parameter under its exact name with its
shape, and turns any mismatch or missing parameter into a WeightsError naming them.
``strict=False`` (fine-tuning, pretrained backbones) matches names by suffix
(``ppdet.checkpoint.lenient``), skips what does not fit and says so. Either way one report
line is printed (unless ``quiet``).

The model is used through ``state_dict()`` and each tensor's ``shape``, ``dtype`` and
``set_value``, so this module needs no framework import of its own.
"""

from __future__ import annotations

import numpy as np

from ppdet.checkpoint.lenient import fit_state_dict
from ppdet.checkpoint.report import LoadReport, WeightsError

__all__ = ["exact_match", "load_state_dict"]


def load_state_dict(
    model, state: dict, source: str, strict: bool = True, quiet: bool = False
) -> LoadReport:
    """Copy ``state`` ({name: array}) into ``model`` (a paddle.nn.Layer); return the report.

    ``source`` names where ``state`` came from, for the report and errors. Nothing is copied
    when a strict load fails.
    """
    own = model.state_dict()
    if strict:
        report, to_set = exact_match(own, state, source)
    else:
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


def _dtype(tensor) -> str:
    return str(tensor.dtype).replace("paddle.", "")


def exact_match(own: dict, state: dict, source: str) -> tuple[LoadReport, dict]:
    """Pair model tensors ``own`` with ``state`` entries of the same name and shape.

    Returns the report and ``{name: array}`` (cast to the model's dtypes) to copy.
    """
    loaded, mismatched, to_set = [], [], {}
    for name, target in own.items():
        if name not in state:
            continue
        value = np.asarray(state[name])
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append((name, tuple(value.shape), tuple(target.shape)))
            continue
        to_set[name] = value.astype(_dtype(target), copy=False)
        loaded.append(name)
    missing = [n for n in own if n not in state]
    unused = [n for n in state if n not in own]
    return LoadReport(source, loaded, mismatched, missing, unused), to_set
