"""The fluid-era (PaddleDetection v0.1) conventions a model runs, as its sublayers declare them.

Contract: a sublayer that runs a fluid-era convention declares it in a dict attribute
``conventions``, keys naming the behaviour and values its setting, e.g.::

    class RoIAlign(nn.Layer):
        def __init__(self, aligned=True, ...):
            if not aligned:
                self.conventions = {"roi_align_aligned": False}

:func:`model_conventions` merges the declarations of every sublayer (the model included); two
sublayers that declare one key with different values are an error. Weights that need such
behaviour (a legacy v0.1 checkpoint's record, ``LegacyModel.behaviour``) are checked against it
with :func:`missing_conventions` before they load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ppdet.errors import PpdetError

__all__ = ["ConventionError", "missing_conventions", "model_conventions"]


class ConventionError(PpdetError, ValueError):
    """Sublayers that disagree about a convention, or a malformed declaration (one line)."""


def model_conventions(model) -> dict[str, Any]:
    """``{key: value}`` merged from the ``conventions`` dicts of ``model`` and its sublayers.

    ``model`` is a ``paddle.nn.Layer`` (anything with ``named_sublayers(include_self=True)``).
    Raises ConventionError when two sublayers declare one key with different values, naming both.
    """
    merged: dict[str, Any] = {}
    declared_by: dict[str, str] = {}
    for name, layer in model.named_sublayers(include_self=True):
        declared = getattr(layer, "conventions", None)
        where = name or type(layer).__name__
        if declared is None:
            continue
        if not isinstance(declared, Mapping):
            raise ConventionError(
                f"{where}.conventions must be a dict like {{'box_coder_plus_one': True}}, "
                f"got {type(declared).__name__}"
            )
        for key, value in declared.items():
            if key in merged and merged[key] != value:
                raise ConventionError(
                    f"conflicting conventions: {declared_by[key]} declares {key}={merged[key]!r}, "
                    f"{where} declares {key}={value!r}; set them alike in the config"
                )
            if key not in merged:
                merged[key], declared_by[key] = value, where
    return merged


def missing_conventions(required: Mapping[str, Any], declared: Mapping[str, Any]) -> list[str]:
    """What ``declared`` (a model's conventions) lacks of ``required``, one text per key:
    ``"box_coder_plus_one=True (not declared)"``, ``"roi_align_aligned=False (model: True)"``."""
    missing = []
    for key, value in required.items():
        if key not in declared:
            missing.append(f"{key}={value!r} (not declared)")
        elif declared[key] != value:
            missing.append(f"{key}={value!r} (model: {declared[key]!r})")
    return missing
