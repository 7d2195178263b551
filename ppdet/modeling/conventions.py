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

Training-side conventions (how a v0.1 config builds its training targets, so that it trains
with the conventions it infers with) are declared the same way, by the target assigners
through the heads that own them; :data:`TRAINING_CONVENTIONS` names them and what they mean.
Converted weights never require them (they matter only when training).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ppdet.errors import PpdetError

__all__ = ["TRAINING_CONVENTIONS", "ConventionError", "missing_conventions", "model_conventions"]

# fluid-era training behaviour key -> what its value means (declared by the assigners in
# ppdet/modeling/assigners/ through their heads; "box_coder_plus_one", a test-time key, is
# also declared by a box head whose training targets are coded with +1 widths)
TRAINING_CONVENTIONS: dict[str, str] = {
    "rpn_target_assign": (
        '"fluid": RPN targets as fluid\'s rpn_target_assign: IoU with +1 widths, positives at '
        "IoU >= positive_overlap or within 1e-5 of a gt box's best, sampled before the "
        "negatives (which win), deltas coded with +1 widths"
    ),
    "rpn_straddle_thresh": (
        "t >= 0: RPN anchors reaching more than t pixels beyond the resized image get no "
        "label (fluid's straddle filter; v0.1: 0)"
    ),
    "proposal_labels": (
        '"fluid": R-CNN RoI labels as fluid\'s generate_proposal_labels: gt boxes put before '
        "the proposals, IoU with +1 widths, a RoI matched to the first gt within 1e-5 of its "
        "best IoU (Cascade: every stage, each with the gt boxes before its RoIs)"
    ),
    "mask_labels": (
        '"fluid": mask targets as fluid\'s generate_mask_labels: a RoI takes the object whose '
        "polygons' bounding box has the highest +1 IoU with it; RoI sizes clamped at 1 pixel"
    ),
    "rpn_loss_beta": (
        "beta > 0: loss_rpn_reg is smooth L1 with this beta (v0.1: fluid's sigma 3, 1/9), not L1"
    ),
    "rpn_loss_norm": (
        '"sampled": both RPN losses divided by the number of anchors actually sampled '
        "(v0.1's mean), not by batch_size_per_im * images"
    ),
    "rcnn_loss_beta": (
        "beta > 0: the R-CNN box regression loss (every cascade stage) is smooth L1 with "
        "this beta (v0.1: fluid's sigma 1, beta 1), not L1"
    ),
    "retina_num_pos_plus_one": (
        "True: RetinaNet's losses divided by each image's positives + 1, summed (fluid's "
        "retinanet_target_assign fg_num)"
    ),
    "anchor_target_assign": (
        '"fluid": RetinaNet anchor labels as fluid\'s retinanet_target_assign: IoU with +1 '
        "widths, low-quality matches within 1e-5 of a gt box's best, negatives win over them"
    ),
}


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
