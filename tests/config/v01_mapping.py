"""Compare a PaddleDetection v0.1 config with ours through v01_key_mapping.yml.

v0.1's configs name other classes and keys (``FasterRCNNTrainFeed.batch_size``,
``FPNRPNHead.anchor_start_size``, ``max_iters``). The mapping file sends each flattened v0.1 key
(a regular expression, first match wins) either to one or more of our flattened keys, whose
value a named conversion below turns into v0.1's form, or to ``n/a`` with the reason it has no
counterpart. Every v0.1 key must match a rule. A target ``<none>`` means "ours cannot express
it yet": the difference then needs an allow-list entry. A target ending in ``?`` may be absent
(one of several heads); when all targets are optional and none exists, the v0.1 key belongs
to a part the model does not build and is skipped.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .upstream_compare import ABSENT, Difference, Value, same

NONE_TARGET = "<none>"


def _log2_inv(scale: float) -> int:
    return round(-math.log2(scale))


def _get(flat: dict[str, Value], key: str, default: Any = ABSENT) -> Any:
    return flat[key].value if key in flat else default


# -------------------------------------------------------------- conversions of our values
# Each takes (values of the rule's targets, our flat config, the regex groups) and returns the
# value in v0.1's form.
def _identity(values, flat, groups):
    """The value, when every target holds the same one (else all of them: a difference)."""
    if all(same(v, values[0]) for v in values[1:]):
        return values[0]
    return {"differing targets": values}


def _plus_one(values, flat, groups):
    """num_classes: v0.1 counts the background class."""
    return values[0] + 1


def _plus_two(values, flat, groups):
    """ResNet return_idx (0 = res2) -> v0.1 feature_maps (2 = res2)."""
    return [i + 2 for i in values[0]]


def _freeze_at(values, flat, groups):
    """Our freeze_at (index of the last frozen stage, 0 = stem and res2, -1 = none) -> v0.1's
    (2 = stem and res2, 0 = none)."""
    return 0 if values[0] < 0 else values[0] + 2


def _reciprocal(values, flat, groups):
    """Box weights [10, 10, 5, 5] <-> v0.1 variances [0.1, 0.1, 0.2, 0.2]."""
    return [1.0 / w for w in values[0]]


def _reversed(values, flat, groups):
    """FPN spatial scales: ours finest first, v0.1's coarsest first."""
    return list(reversed(values[0]))


def _fpn_min_level(values, flat, groups):
    return _log2_inv(values[0][0])


def _fpn_max_level(values, flat, groups):
    """The finest level + the pyramid levels + the extra levels (P6, P7)."""
    scales = values[0]
    return _log2_inv(scales[0]) + len(scales) - 1 + _get(flat, "FPN.extra_stage", 1)


def _extra_convs_from_c5(values, flat, groups):
    """v0.1's has_extra_convs made P6 by a conv on C5: ours has_extra_convs with use_c5."""
    if not values[0]:
        return False
    return True if _get(flat, "FPN.use_c5", True) else "extra convs on P5 (2.x), not C5"


def _first_size(values, flat, groups):
    """FPN anchor sizes [[32], [64], ...] -> v0.1 anchor_start_size 32."""
    return values[0][0][0]


def _min_level_of_strides(values, flat, groups):
    return round(math.log2(values[0][0]))


def _max_level_of_strides(values, flat, groups):
    return round(math.log2(values[0][-1]))


def _stride_pair(values, flat, groups):
    """C4 anchor strides [16] -> v0.1 stride [16.0, 16.0] (x, y)."""
    (stride,) = values[0]
    return [float(stride), float(stride)]


def _roi_min_level(values, flat, groups):
    """RoIAlign start_level -> v0.1 min_level (pyramid level of the first FPN map)."""
    return values[0] + _log2_inv(_get(flat, "FPN.spatial_scales")[0])


def _roi_max_level(values, flat, groups):
    return values[0] + _log2_inv(_get(flat, "FPN.spatial_scales")[0])


def _first_of_each(values, flat, groups):
    """Cascade box weights per stage [[10, 10, 5, 5], [20, ...], ...] -> v0.1's [10, 20, 30]."""
    return [w[0] for w in values[0]]


def _sigma_from_beta(values, flat, groups):
    """Smooth L1 beta -> v0.1's sigma (beta = 1 / sigma^2)."""
    return 1.0 / math.sqrt(values[0])


def _not(values, flat, groups):
    return not values[0]


def _res5_variant(values, flat, groups):
    """Res5Head.shortcut_avgpool -> v0.1 ResNetC5.variant: the pooled shortcut is variant d's."""
    return "d" if values[0] is True else "b"


def _index(i: int) -> Callable:
    def pick(values, flat, groups):
        return values[0][i] if values[0] is not ABSENT else ABSENT

    pick.__doc__ = f"Item {i} of a [low, high, prob] triple."
    return pick


def _contains(op: str) -> Callable:
    def has(values, flat, groups):
        return op in values[0]

    has.__doc__ = f"Whether the operator list has {op}."
    return has


def _uses_cv2(values, flat, groups):
    """v0.1 ResizeImage.use_cv2: false where ours resizes with Pillow (PILResize)."""
    return "PILResize" not in values[0]


def _const(value: Any) -> Callable:
    def fixed(values, flat, groups):
        return value

    fixed.__doc__ = f"Ours always behaves as v0.1's {value!r} (no key)."
    return fixed


def _min(values, flat, groups):
    """Resize target [short, long] -> v0.1 target_size (the short side)."""
    return min(values[0])


def _max_size(values, flat, groups):
    """v0.1 max_size: the long-side limit when keeping the ratio, 0 when stretching."""
    target, keep_ratio = values
    return max(target) if keep_ratio else 0


def _single_square(values, flat, groups):
    """RandomResize [[608, 608]] -> v0.1 RandomInterpImage target_size 608."""
    (size,) = values[0]
    return size[0] if size[0] == size[1] else size


def _norm_after_permute(values, flat, groups):
    """v0.1 NormalizeImage is_channel_first: it ran after Permute."""
    ops = values[0]
    return ops.index("NormalizeImage") > ops.index("Permute")


def _crop_samplers(values, flat, groups):
    """Our RandomCrop -> v0.1 CropImage batch_sampler rows [max_sample, max_trial, min_scale,
    max_scale, min_aspect, max_aspect, min_overlap, max_overlap] (max_overlap 1: no bound)."""
    thresholds, scaling, aspect, attempts, no_crop = values
    rows = [[1, 1, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]] if no_crop else []
    rest = [[1, attempts, *scaling, *aspect, t, 1.0] for t in thresholds if t > 0]
    zero = [[1, attempts, *scaling, *aspect, 0.0, 1.0]] if 0.0 in thresholds else []
    return rows + rest + zero


def _op_names(values, flat, groups):
    """Our operator list in v0.1's names (PadGT has no v0.1 operator: v0.1 padded gt itself)."""
    names = {
        "Decode": "DecodeImage",
        "RandomFlip": "RandomFlipImage",
        "Resize": "ResizeImage",
        "PILResize": "ResizeImage",
        "Mixup": "MixupImage",
        "RandomExpand": "ExpandImage",
        "RandomCrop": "CropImage",
        "RandomResize": "RandomInterpImage",
        "BatchRandomResize": "RandomShape",
    }
    return [names.get(op, op) for op in values[0] if op != "PadGT"]


_CLASS_NAMES = {  # ours -> v0.1
    "Res5Head": "ResNetC5",
    "CascadeTwoFCHead": "FC6FC7Head",
    "CascadeHead": "CascadeBBoxHead",
    "SSDHead": "MultiBoxHead",
    "RMSProp": "RMSPropOptimizer",
}


def _class_name(values, flat, groups):
    return _CLASS_NAMES.get(values[0], values[0])


def _backbone_name(values, flat, groups):
    """ResNet with groups > 1 is v0.1's ResNeXt."""
    name = values[0]
    if name == "ResNet" and _get(flat, "ResNet.groups", 1) > 1:
        return "ResNeXt"
    return name


def _rpn_name(values, flat, groups):
    """One RPN class here; v0.1 had FPNRPNHead for pyramids."""
    return "FPNRPNHead" if len(values[0]) > 1 else "RPNHead"


def _roi_name(values, flat, groups):
    """v0.1 named the RoI extractor in the architecture: FPNRoIAlign with a neck."""
    return "FPNRoIAlign" if values[0] not in (ABSENT, None) else "RoIAlign"


def _bbox_assigner_name(values, flat, groups):
    return "CascadeBBoxAssigner" if groups.get("arch") == "CascadeRCNN" else values[0]


def _mask_flip(values, flat, groups):
    """v0.1 is_mask_flip: ours flips polygons whenever the samples have them (load_segm)."""
    return bool(_get(flat, "TrainDataset.load_segm", False))


def _zero_per_stage(values, flat, groups):
    """Ours labels every RoI below a stage's threshold background (lower bound 0 each stage)."""
    return [0.0] * len(values[0])


def _zeros_as_none(values, flat, groups):
    """SSD prior steps [0, ...] (from the image / feature size) = v0.1's None."""
    return None if all(s == 0 for s in values[0]) else values[0]


def _none_is_true(values, flat, groups):
    """VOC label_list None = the 20 default VOC names (v0.1 use_default_label true)."""
    return values[0] in (None, ABSENT)


def _joined(values, flat, groups):
    """dataset_dir / path (the file the loader opens)."""
    return os.path.normpath(os.path.join(*values))


CONVERSIONS: dict[str, Callable] = {
    "identity": _identity,
    "plus_one": _plus_one,
    "plus_two": _plus_two,
    "freeze_at": _freeze_at,
    "reciprocal": _reciprocal,
    "reversed": _reversed,
    "fpn_min_level": _fpn_min_level,
    "fpn_max_level": _fpn_max_level,
    "extra_convs_from_c5": _extra_convs_from_c5,
    "first_size": _first_size,
    "min_level_of_strides": _min_level_of_strides,
    "max_level_of_strides": _max_level_of_strides,
    "stride_pair": _stride_pair,
    "roi_min_level": _roi_min_level,
    "roi_max_level": _roi_max_level,
    "first_of_each": _first_of_each,
    "sigma_from_beta": _sigma_from_beta,
    "not": _not,
    "res5_variant": _res5_variant,
    "low": _index(0),
    "high": _index(1),
    "prob": _index(2),
    "has_decode": _contains("Decode"),
    "has_mixup": _contains("Mixup"),
    "min": _min,
    "max_size": _max_size,
    "single_square": _single_square,
    "norm_after_permute": _norm_after_permute,
    "crop_samplers": _crop_samplers,
    "op_names": _op_names,
    "class_name": _class_name,
    "backbone_name": _backbone_name,
    "rpn_name": _rpn_name,
    "roi_name": _roi_name,
    "bbox_assigner_name": _bbox_assigner_name,
    "mask_flip": _mask_flip,
    "zero_per_stage": _zero_per_stage,
    "zeros_as_none": _zeros_as_none,
    "none_is_true": _none_is_true,
    "joined": _joined,
    "uses_cv2": _uses_cv2,
    "always_true": _const(True),
    "always_false": _const(False),
    "zero": _const(0.0),
    "one": _const(1),
    "half": _const(0.5),
    "eta_one": _const(1.0),
    "variant_b": _const("b"),
    "ap_11point": _const("11point"),
}


# -------------------------------------------------------------- conversions of v0.1's values
def _samplers_unbounded(value, flat, groups):
    """CropImage rows: a max_overlap of 0 with a min_overlap set is no upper bound (v0.1 skips a
    0 bound), written 1.0 as ours does."""
    return [row[:7] + [1.0] if row[6] != 0 and row[7] == 0 else list(row) for row in value]


def _v01_joined(field: str) -> Callable:
    def join(value, flat, groups):
        base = flat.get(f"{groups['feed']}{groups['mode']}Feed.dataset.dataset_dir")
        parts = [base.value] if base is not None and base.value else []
        return os.path.normpath(os.path.join(*parts, value))

    join.__doc__ = f"v0.1's dataset_dir / {field}."
    return join


def _without_normalize_box(value, flat, groups):
    """v0.1's NormalizeBox (boxes to [0, 1]) has no counterpart: ours keeps pixel boxes."""
    return [op for op in value if op != "NormalizeBox"]


V01_CONVERSIONS: dict[str, Callable] = {
    "samplers_unbounded": _samplers_unbounded,
    "without_normalize_box": _without_normalize_box,
    "joined_annotation": _v01_joined("annotation"),
    "joined_image_dir": _v01_joined("image_dir"),
}


# -------------------------------------------------------------- the rules
@dataclass
class Rule:
    pattern: re.Pattern
    ours: list[str]
    via: str
    v01_via: str | None
    reason: str | None  # set for n/a rules

    @classmethod
    def from_dict(cls, d: dict) -> Rule:
        if "n/a" in d:
            return cls(re.compile(d["v01"]), [], "identity", None, d["n/a"])
        ours = d["ours"] if isinstance(d["ours"], list) else [d["ours"]]
        via = d.get("via", "identity")
        if via not in CONVERSIONS:
            raise ValueError(f"v01_key_mapping: unknown conversion {via!r} for {d['v01']}")
        if d.get("v01_via") and d["v01_via"] not in V01_CONVERSIONS:
            raise ValueError(f"v01_key_mapping: unknown v01_via {d['v01_via']!r}")
        return cls(re.compile(d["v01"]), ours, via, d.get("v01_via"), None)


def load_rules(data: dict) -> list[Rule]:
    return [Rule.from_dict(d) for d in data["rules"]]


_SKIP = object()  # every target optional and absent: a part this model does not build


def _targets(rule: Rule, groups: dict, ours: dict[str, Value]) -> Any:
    """The values of the rule's existing targets; None if a required one is missing (or the
    target is ``<none>``); _SKIP if all targets are optional and none exists."""
    values = []
    for target in rule.ours:
        if target == NONE_TARGET:
            return None
        key = target.rstrip("?").format(**groups)
        if key in ours:
            values.append(ours[key].value)
        elif not target.endswith("?"):
            return None
    if not values:
        return _SKIP
    return values


def compare_v01(
    v01: dict[str, Value], ours: dict[str, Value], rules: list[Rule]
) -> tuple[list[Difference], list[str]]:
    """(differences in v0.1's key names, v0.1 keys no rule matches)."""
    diffs, unmapped = [], []
    for key in sorted(v01):
        rule = next((r for r in rules if r.pattern.fullmatch(key)), None)
        if rule is None:
            unmapped.append(key)
            continue
        if rule.reason is not None:
            continue
        groups = rule.pattern.fullmatch(key).groupdict()
        want = v01[key].value
        if rule.v01_via:
            want = V01_CONVERSIONS[rule.v01_via](want, v01, groups)
        values = _targets(rule, groups, ours)
        if values is _SKIP:
            continue
        got = ABSENT if values is None else CONVERSIONS[rule.via](values, ours, groups)
        if not same_loose(got, want):
            diffs.append(Difference(key, got, want))
    return diffs, unmapped


def same_loose(ours: Any, v01: Any) -> bool:
    """``same``, and a v0.1 scalar equals a one-item list of ours (``feature_maps: 4``)."""
    if isinstance(ours, list) and len(ours) == 1 and not isinstance(v01, (list, tuple)):
        return same(ours[0], v01)
    return same(ours, v01)
