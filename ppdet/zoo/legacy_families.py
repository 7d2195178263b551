"""The v0.1 checkpoint families, one record each: everything ``ppdet.zoo.legacy`` knows about
one kind of v0.1 program, so that a new family is one ``LegacyFamily`` (plus its rows in
``legacy_models``).

A record holds:

- ``detector_names``: the neck/head variables its programs create (a regex); a checkpoint with
  none of any family's is an ImageNet-pretrained backbone;
- ``claims(names)``: whether a checkpoint's variable names are this family's (families are
  asked in ``FAMILIES`` order, the backbone family last);
- ``arch(has, shapes)``: which architecture (backbone, depth, variant, FPN, mask, cascade) the
  names and shapes describe;
- ``rules(arch)``: the name table, legacy variable -> 2.x state-dict key (``legacy_rules``);
- ``class_probe``: (variable, its first dimension -> foreground classes);
- ``behaviour(arch)``: the fluid-era behaviour the 2.x model must have to reproduce v0.1's
  numbers, ``{name: value}``; modules declare what they do in a ``conventions`` dict with
  the same names;
- ``notes(arch)``: what a user should know (shown by ``python -m ppdet.zoo info``);
- ``auto_names(names)``: renames of auto-generated names (SSD's ``conv2d_N``), or None.

``BEHAVIOURS`` names and describes every behaviour a family may require (measured against
v0.1 itself, see ``bench/compare_legacy.py``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

from ppdet.zoo.legacy_format import LegacyError
from ppdet.zoo.legacy_rules import (
    EFFICIENTNET_B0_BLOCKS,
    SSD_FIRST_AUTO,
    SSD_PRIORS,
    Arch,
    Rule,
    backbone_rules,
    rcnn_rules,
    retinanet_rules,
    ssd_rules,
    yolov3_rules,
)

__all__ = ["BEHAVIOURS", "FAMILIES", "LegacyFamily", "family_of", "is_detector"]

# fluid-era behaviour name -> what it means (the values a family's behaviour dict gives)
BEHAVIOURS: dict[str, str] = {
    "anchor_rounding": (
        '"fluid": anchor_generator anchors (ratio-major, rounded base sizes, centre '
        "offset * (stride - 1), corners centre -+ (size - 1) / 2)"
    ),
    "pixel_offset": (
        "True: RPN proposals decoded, clipped to the padded input and suppressed with +1 "
        "widths (generate_proposals pixel_offset=True), ranked by sigmoid probability in "
        "fluid's anchor order (saturated scores tie)"
    ),
    "distribute_fpn_pixel_offset": "True: the FPN level of a RoI comes from its +1 area",
    "roi_align_aligned": "False: RoIAlign without the half-pixel shift",
    "box_coder_plus_one": (
        "True: box deltas decoded with +1 widths and no dw/dh clamp, against the RoIs in "
        "original-image pixels, clipped to (w0 - 1, h0 - 1); NMS IoU with +1 widths (Cascade: "
        "the stages refine their RoIs with +1 widths too)"
    ),
    "res5_shortcut_avgpool": "True: the C4 res5 head of a -vd backbone pools its shortcut",
    "cascade_scores_on_last_rois": (
        "True: Cascade test scores = mean softmax of the three stage heads, all run on the last "
        "stage's RoI features (2.x: each head on its own stage's RoIs)"
    ),
    "cascade_refine_unclipped": "True: Cascade stages refine their RoIs without clipping them",
    "mask_paste": (
        '"v0.1": each M x M mask gets a 1-pixel zero border, its box is expanded by (M + 2) / M '
        "and truncated to int, the mask resized (cv2 bilinear) to (x2 - x1 + 1) x (y2 - y1 + 1) "
        "and thresholded at 0.5 (v0.1's mask2out)"
    ),
    "fpn_use_c5": "True: RetinaNet's P6 is computed from C5 (2048 channels), not from P5",
    "retina_detection_output": (
        '"fluid": retinanet_detection_output: per level the best 1000 (anchor, class) pairs '
        "above the score threshold (the coarsest level: above 0), decoded with +1 widths and no "
        "dw/dh clamp, divided by the scale and clipped to the padded input / scale - 1; "
        "per-class NMS with +1 IoU, 100 kept"
    ),
    "se_pool": (
        '"fluid": squeeze-excitation averages over H x W as fluid\'s pool2d: one float32 running '
        "sum in row-major order, then a division (SENet.se_pool: fluid)"
    ),
    "extra_block_act": (
        '"relu": the SSD extra blocks of MobileNetV1 (conv7_*) use ReLU, not ReLU6'
    ),
}

Has = Callable[[str], bool]
Shapes = Mapping[str, tuple]


@dataclasses.dataclass(frozen=True)
class LegacyFamily:
    """One v0.1 family (module docstring)."""

    name: str
    detector_names: re.Pattern | None
    claims: Callable[[set[str]], bool]
    arch: Callable[[Has, Shapes], Arch]
    rules: Callable[[Arch], list[Rule]]
    class_probe: tuple[str, Callable[[int], int]] | None = None
    behaviour: Callable[[Arch], dict] = lambda arch: {}
    notes: Callable[[Arch], str] = lambda arch: ""
    auto_names: Callable[[set[str]], dict[str, str]] | None = None

    def classes(self, shapes: Shapes) -> int | None:
        """Foreground classes from the class layer's shape, None when it is absent."""
        if self.class_probe is None:
            return None
        name, count = self.class_probe
        shape = shapes.get(name)
        return count(shape[0]) if shape else None


def _resnet_depth(has: Has) -> int:
    if has("res2a_branch2c_weights"):  # bottleneck
        if has("res4b35_branch2a_weights"):
            return 152
        return 101 if has("res4b22_branch2a_weights") else 50
    return 34 if has("res2c_branch2a_weights") else 18


def _resnet_kind(has: Has, shapes: Shapes, depth: int, vd: bool, what: str) -> str:
    """resnet | resnext: the names are alike; ResNeXt's 3x3 is grouped ([c, c / groups, 3, 3])."""
    branch2b = shapes.get("res2a_branch2b_weights")
    if branch2b is not None:
        return "resnext" if branch2b[1] != branch2b[0] else "resnet"
    if depth == 101 and vd:
        raise LegacyError(
            f"ResNet101-vd or ResNeXt101-vd-64x4d {what}: names alike; pass shapes= or model="
        )
    return "resnet"


# ---------------------------------------------------------------- YOLOv3


def _yolov3_arch(has: Has, shapes: Shapes) -> Arch:
    if has("yolo_input.conv.weights"):
        return Arch("yolov3", "darknet", 53, affine=False)
    if has("conv2_1_dw_weights"):
        return Arch("yolov3", "mobilenet_v1", 1, affine=False)
    if has("res2a_branch2a_weights"):  # v0.1's only YOLOv3 ResNet is the basic-block R34
        depth = 34 if not has("res2a_branch2c_weights") else _resnet_depth(has)
        return Arch("yolov3", "resnet", depth, affine=False)
    raise LegacyError("YOLOv3 checkpoint with an unknown backbone; pass model= explicitly")


YOLOV3 = LegacyFamily(
    name="yolov3",
    detector_names=re.compile(r"^yolo_(block|output|transition)\."),
    claims=lambda names: "yolo_output.0.conv.weights" in names,
    arch=_yolov3_arch,
    rules=yolov3_rules,
    class_probe=("yolo_output.0.conv.bias", lambda n: n // 3 - 5),
)


# ---------------------------------------------------------------- SSD

_AUTO_CONV = re.compile(r"^conv2d_(\d+)\.([wb])_0$")


def _ssd_auto_names(names: set[str]) -> dict[str, str]:
    """SSD head ``conv2d_N.w_0/b_0``: the k-th distinct N (sorted) becomes conv2d_{22 + k}.

    Only when there are exactly 12 (loc + conf of the 6 maps); other auto names stay as they are.
    """
    found = sorted({int(m.group(1)) for n in names if (m := _AUTO_CONV.match(n))})
    if len(found) != 2 * len(SSD_PRIORS):
        return {}
    return {
        f"conv2d_{n}.{p}_0": f"conv2d_{SSD_FIRST_AUTO + k}.{p}_0"
        for k, n in enumerate(found)
        for p in "wb"
    }


SSD = LegacyFamily(
    name="ssd",
    detector_names=re.compile(r"^(conv7_\d_extra|conv2d_\d+\.[wb]_0$)"),
    claims=lambda names: (
        "conv7_1_extra1_weights" in names and any(_AUTO_CONV.match(n) for n in names)
    ),
    arch=lambda has, shapes: Arch("ssd", "mobilenet_v1", affine=False),
    rules=lambda arch: ssd_rules(),
    class_probe=(f"conv2d_{SSD_FIRST_AUTO + 1}.b_0", lambda n: n // SSD_PRIORS[0] - 1),
    behaviour=lambda arch: {"extra_block_act": "relu"},
    notes=lambda arch: "head params were auto-named conv2d_N: mapped by sorted N",
    auto_names=_ssd_auto_names,
)


# ---------------------------------------------------------------- RetinaNet


def _retinanet_arch(has: Has, shapes: Shapes) -> Arch:
    return Arch("retinanet", depth=_resnet_depth(has), fpn=True)


RETINANET = LegacyFamily(
    name="retinanet",
    detector_names=re.compile(r"^retnet_"),
    claims=lambda names: "retnet_cls_pred_fpn3_w" in names,
    arch=_retinanet_arch,
    rules=retinanet_rules,
    class_probe=("retnet_cls_pred_fpn3_b", lambda n: n // 9),
    behaviour=lambda arch: {
        "fpn_use_c5": True,
        "box_coder_plus_one": True,
        "anchor_rounding": "fluid",
        "retina_detection_output": "fluid",
    },
    notes=lambda arch: (
        "fpn_6 takes C5 (2048 ch), fluid anchors and detection output, +1 box coding: the v0.1 "
        "configs (configs/retinanet_r50_fpn_1x.yml) run them"
    ),
)


# ---------------------------------------------------------------- Faster / Mask / Cascade R-CNN

_RCNN_NOTE = (
    "legacy v0.1 R-CNN: +1 box widths, RoIAlign aligned=False, fluid anchor rounding, proposals "
    "clipped to the padded input (the v0.1 configs configs/<name>.yml select them); "
    "input mean/std ImageNet x255, short side 800 / max 1333"
)


def _rcnn_arch(has: Has, shapes: Shapes) -> Arch:
    se = has("conv4_1_x1_weights")
    if not (se or has("res2a_branch2a_weights")):
        raise LegacyError(
            "no known v0.1 backbone variables (res2a_branch2a_weights, ...); "
            "pass model= explicitly or check that this is a v0.1 checkpoint"
        )
    vd = has("conv1_1_weights")
    heads = dict(fpn=has("fpn_inner_res5_sum_w"), mask=has("mask_fcn_logits_w"))
    heads["cascade"] = has("cls_score_2_w")
    if se:
        return Arch("rcnn", "senet", 152, "d", **heads)
    depth = _resnet_depth(has)
    kind = _resnet_kind(has, shapes, depth, vd, "R-CNN")
    return Arch("rcnn", kind, depth, "d" if vd else "b", **heads)


def _rcnn_behaviour(arch: Arch) -> dict:
    out = {
        "pixel_offset": True,
        "roi_align_aligned": False,
        "box_coder_plus_one": True,
        "anchor_rounding": "fluid",
    }
    if arch.fpn:
        out["distribute_fpn_pixel_offset"] = True
    elif arch.variant == "d":
        out["res5_shortcut_avgpool"] = True
    if arch.backbone == "senet":
        out["se_pool"] = "fluid"
    if arch.mask:
        out["mask_paste"] = "v0.1"
    if arch.cascade:
        out["cascade_scores_on_last_rois"] = True
        out["cascade_refine_unclipped"] = True
    return out


def _rcnn_notes(arch: Arch) -> str:
    note = _RCNN_NOTE
    if arch.variant == "d" and not arch.fpn:
        note += "; the legacy res5 head is variant d (avg-pool shortcut): Res5Head.shortcut_avgpool"
    if arch.cascade:
        note += "; class-agnostic deltas (slot 1 of 2), test scores = mean of the 3 stage softmaxes"
    if arch.backbone == "senet":
        note += "; 2.x target hypothetical (no 2.x SENet config)"
    return note


RCNN = LegacyFamily(
    name="rcnn",
    detector_names=re.compile(
        r"^(fpn_|conv_rpn|rpn_|cls_score|bbox_pred|fc[67](_[23])?_[wb]$|mask_inter_feat_|"
        r"mask_fcn_logits|conv5_mask_)"
    ),
    claims=lambda names: any(RCNN.detector_names.match(n) for n in names),
    arch=_rcnn_arch,
    rules=rcnn_rules,
    class_probe=("cls_score_b", lambda n: n - 1),
    behaviour=_rcnn_behaviour,
    notes=_rcnn_notes,
)


# ---------------------------------------------------------------- ImageNet-pretrained backbones


def _efficientnet_arch(has: Has, shapes: Shapes) -> Arch:
    """EfficientNet-B0 (PaddleClas / PaddleDetection v0.5 names); B1-B7 are refused."""
    last = f"_blocks.{EFFICIENTNET_B0_BLOCKS - 1}._project_conv_weights"
    widths = shapes.get(last, (320,))
    if has(f"_blocks.{EFFICIENTNET_B0_BLOCKS}._project_conv_weights") or widths[0] != 320:
        raise LegacyError(
            "an EfficientNet larger than B0 (more than 16 blocks or wider than 320 channels): "
            "only EfficientNetB0_pretrained converts; use EfficientNet scale b0"
        )
    return Arch("backbone", "efficientnet", 0, affine=False)


def _backbone_arch(has: Has, shapes: Shapes) -> Arch:
    if has("_conv_stem_weights"):
        return _efficientnet_arch(has, shapes)
    if has("yolo_input.conv.weights"):
        return Arch("backbone", "darknet", 53, affine=False)
    if has("conv2_1_dw_weights"):
        return Arch("backbone", "mobilenet_v1", 1, affine=False)
    if has("conv4_1_x1_weights"):
        depth = 152 if has("conv6_36_x1_weights") else 0
        variant = "d" if has("conv1_1_weights") else "b"
        return Arch("backbone", "senet", depth, variant, affine=False)
    if has("res2a_branch2a_weights"):
        depth = _resnet_depth(has)
        vd = has("conv1_1_weights")
        kind = _resnet_kind(has, shapes, depth, vd, "pretrained")
        return Arch("backbone", kind, depth, "d" if vd else "b", affine=False)
    raise LegacyError(
        "no known v0.1 backbone variables (res2a_branch2a_weights, yolo_input.conv.weights, "
        "conv2_1_dw_weights, conv4_1_x1_weights, _conv_stem_weights); pass model= explicitly "
        "or check that this is a v0.1 checkpoint"
    )


BACKBONE = LegacyFamily(
    name="backbone",
    detector_names=None,
    claims=lambda names: True,
    arch=_backbone_arch,
    rules=backbone_rules,
    notes=lambda arch: "ImageNet-1k classifier skipped; real BN statistics copied",
)

# asked in this order: the first family that claims a checkpoint's names is its family
FAMILIES: dict[str, LegacyFamily] = {f.name: f for f in (YOLOV3, SSD, RETINANET, RCNN, BACKBONE)}


def is_detector(names) -> bool:
    """Whether legacy variable names include any neck/head variable (else: a bare backbone)."""
    patterns = [f.detector_names for f in FAMILIES.values() if f.detector_names is not None]
    return any(p.match(n) for n in names for p in patterns)


def family_of(names: set[str]) -> LegacyFamily:
    """The family whose checkpoints hold these (optimizer-free) variable names."""
    if not is_detector(names):
        return BACKBONE
    for family in FAMILIES.values():
        if family is not BACKBONE and family.claims(names):
            return family
    raise LegacyError(
        "detector variables of no known v0.1 family (yolo_output.0.conv.weights, "
        "conv7_1_extra1_weights + conv2d_N, retnet_cls_pred_fpn3_w, conv_rpn_*); "
        "pass model= explicitly"
    )
