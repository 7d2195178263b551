"""The v0.1-era checkpoints ``ppdet.zoo.legacy`` converts: the seed zoo's detectors and the
ImageNet-pretrained backbones of that time (``paddle-imagenet-models-name`` tarballs,
PaddleCV ``image_classification`` naming), each with the 2.x compat list it converts to.

A pretrained backbone holds the same variable names as the backbone part of a detection
tarball, but with real BN statistics (``_mean`` / ``_variance``, no affine channel) and an
ImageNet classifier (``fc_0.w_0``/``fc_0.b_0``, ``fc_weights``/``fc_offset``,
``fc6_weights``, ``fc7_weights``, ...), which is skipped and reported.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from ppdet.zoo.legacy_format import LegacyError
from ppdet.zoo.legacy_rules import Arch, Rule, rules_for

__all__ = [
    "LEGACY_MODELS",
    "LegacyModel",
    "detect_backbone",
    "is_classifier",
    "is_detector",
]


@dataclasses.dataclass(frozen=True)
class LegacyModel:
    key: str
    target: str  # 2.x compat list name
    num_classes: int
    arch: Arch
    behaviour: dict
    notes: str = ""

    def rules(self) -> list[Rule]:
        return rules_for(self.arch)


_RCNN = {
    "pixel_offset": True,
    "roi_align_aligned": False,
    "box_coder_plus_one": True,
    "anchor_rounding": "fluid",
}
_RCNN_FPN = {**_RCNN, "distribute_fpn_pixel_offset": True}
_RCNN_NOTE = (
    "legacy v0.1 R-CNN: +1 box widths, RoIAlign aligned=False, fluid anchor rounding; "
    "input mean/std ImageNet x255, short side 800 / max 1333"
)
_BACKBONE_NOTE = "ImageNet-1k classifier skipped; real BN statistics copied"
IMAGENET_CLASSES = 1000


def _m(key, target, arch, behaviour=None, notes="", num_classes=80):
    if behaviour is None:
        behaviour = dict(_RCNN_FPN if arch.fpn else _RCNN) if arch.family == "rcnn" else {}
    if not notes and arch.family == "rcnn":
        notes = _RCNN_NOTE
    return LegacyModel(key, target, num_classes, arch, behaviour, notes)


def _detectors() -> list[LegacyModel]:
    def r(**kw) -> Arch:
        return Arch("rcnn", **kw)

    fpn = {"fpn": True}
    vd_c4 = {**_RCNN, "res5_shortcut_avgpool": True}
    retina = {"fpn_use_c5": True, "box_coder_plus_one": True, "anchor_rounding": "fluid"}
    se_note = _RCNN_NOTE + "; 2.x target hypothetical (no 2.x SENet config)"
    return [
        _m("faster_rcnn_r50_1x", "faster_rcnn_r50", r()),
        _m("faster_rcnn_r50_2x", "faster_rcnn_r50", r()),
        _m("mask_rcnn_r50_1x", "mask_rcnn_r50", r(mask=True)),
        _m("mask_rcnn_r50_2x", "mask_rcnn_r50", r(mask=True)),
        _m(
            "faster_rcnn_r50_vd_1x",
            "faster_rcnn_r50_vd",
            r(variant="d"),
            vd_c4,
            _RCNN_NOTE
            + "; the legacy res5 head is variant d (avg-pool shortcut), the 2.x Res5Head variant b",
        ),
        _m("faster_rcnn_r50_fpn_1x", "faster_rcnn_r50_fpn", r(**fpn)),
        _m("faster_rcnn_r50_fpn_2x", "faster_rcnn_r50_fpn", r(**fpn)),
        _m("mask_rcnn_r50_fpn_1x", "mask_rcnn_r50_fpn", r(mask=True, **fpn)),
        _m(
            "cascade_rcnn_r50_fpn_1x",
            "cascade_rcnn_r50_fpn",
            r(cascade=True, **fpn),
            None,
            _RCNN_NOTE
            + "; class-agnostic deltas (slot 1 of 2), test scores = mean of the 3 stage softmaxes",
        ),
        _m("faster_rcnn_r50_vd_fpn_2x", "faster_rcnn_r50_vd_fpn", r(variant="d", **fpn)),
        _m("mask_rcnn_r50_vd_fpn_2x", "mask_rcnn_r50_vd_fpn", r(variant="d", mask=True, **fpn)),
        _m("faster_rcnn_r101_1x", "faster_rcnn_r101", r(depth=101)),
        _m("faster_rcnn_r101_fpn_1x", "faster_rcnn_r101_fpn", r(depth=101, **fpn)),
        _m("faster_rcnn_r101_fpn_2x", "faster_rcnn_r101_fpn", r(depth=101, **fpn)),
        _m("mask_rcnn_r101_fpn_1x", "mask_rcnn_r101_fpn", r(depth=101, mask=True, **fpn)),
        _m(
            "faster_rcnn_r101_vd_fpn_1x",
            "faster_rcnn_r101_vd_fpn",
            r(depth=101, variant="d", **fpn),
        ),
        _m(
            "faster_rcnn_r101_vd_fpn_2x",
            "faster_rcnn_r101_vd_fpn",
            r(depth=101, variant="d", **fpn),
            None,
            _RCNN_NOTE + "; the v0.1 MODEL_ZOO links this row to faster_rcnn_r101_fpn_2x.tar "
            "(a typo upstream)",
        ),
        _m(
            "faster_rcnn_x101_vd_64x4d_fpn_1x",
            "faster_rcnn_x101_vd_64x4d_fpn",
            r(backbone="resnext", depth=101, variant="d", **fpn),
        ),
        _m(
            "faster_rcnn_se154_vd_fpn_s1x",
            "faster_rcnn_se154_vd_fpn",
            r(backbone="senet", depth=152, variant="d", **fpn),
            None,
            se_note,
        ),
        _m(
            "mask_rcnn_se154_vd_fpn_s1x",
            "mask_rcnn_se154_vd_fpn",
            r(backbone="senet", depth=152, variant="d", mask=True, **fpn),
            None,
            se_note,
        ),
        _m("yolov3_darknet", "yolov3_darknet53", Arch("yolov3", "darknet", 53, affine=False)),
        _m(
            "yolov3_mobilenet_v1",
            "yolov3_mobilenet_v1",
            Arch("yolov3", "mobilenet_v1", affine=False),
        ),
        _m("yolov3_r34", "yolov3_r34", Arch("yolov3", "resnet", 34, affine=False)),
        _m(
            "yolov3_r34_voc",
            "yolov3_r34",
            Arch("yolov3", "resnet", 34, affine=False),
            num_classes=20,
        ),
        _m(
            "retinanet_r50_fpn_1x",
            "retinanet_r50_fpn",
            Arch("retinanet", depth=50, fpn=True),
            retina,
            "fpn_6 takes C5 (2048 ch): build the 2.x FPN with use_c5=True",
        ),
        _m(
            "retinanet_r101_fpn_1x",
            "retinanet_r101_fpn",
            Arch("retinanet", depth=101, fpn=True),
            retina,
            "fpn_6 takes C5 (2048 ch): build the 2.x FPN with use_c5=True",
        ),
        _m(
            "ssd_mobilenet_v1_voc",
            "ssd_mobilenet_v1_voc",
            Arch("ssd", "mobilenet_v1", affine=False),
            num_classes=20,
            notes="head params were auto-named conv2d_N: mapped by sorted N",
        ),
    ]


def _backbones() -> list[LegacyModel]:
    """``<name>_pretrained.tar`` -> ``backbone_*`` list. The first row of an architecture is
    what ``detect_backbone`` returns (ResNet50_cos_pretrained: the seed zoo's R50 file)."""

    def b(key: str, target: str, backbone: str, depth: int, variant: str = "b", notes=""):
        arch = Arch("backbone", backbone, depth, variant, affine=False)
        note = _BACKBONE_NOTE + (f"; {notes}" if notes else "")
        return LegacyModel(key, target, IMAGENET_CLASSES, arch, {}, note)

    rows = [b("ResNet50_cos_pretrained", "backbone_resnet50", "resnet", 50, notes="cosine LR")]
    for depth in (18, 34, 50, 101, 152):
        rows.append(b(f"ResNet{depth}_pretrained", f"backbone_resnet{depth}", "resnet", depth))
    for depth in (18, 34, 50, 101, 152):
        rows.append(
            b(f"ResNet{depth}_vd_pretrained", f"backbone_resnet{depth}_vd", "resnet", depth, "d")
        )
    rows += [
        b(
            "ResNeXt101_vd_64x4d_pretrained",
            "backbone_resnext101_vd_64x4d",
            "resnext",
            101,
            "d",
            "groups 64, base_width 4",
        ),
        b(
            "SENet154_vd_pretrained",
            "backbone_senet154_vd",
            "senet",
            152,
            "d",
            "2.x target hypothetical (no 2.x SENet config)",
        ),
        b("DarkNet53_pretrained", "backbone_darknet53", "darknet", 53),
        b("MobileNetV1_pretrained", "backbone_mobilenet_v1", "mobilenet_v1", 1, notes="scale 1"),
    ]
    return rows


LEGACY_MODELS: dict[str, LegacyModel] = {m.key: m for m in _detectors() + _backbones()}

# ImageNet classifiers of the image_classification models: fc_0.w_0 / fc_0.b_0 (ResNet),
# fc_weights / fc_offset (ResNet-vd, ResNeXt-vd, DarkNet), fc6_* (SE-ResNeXt), fc7_* (MobileNetV1)
_CLASSIFIER = re.compile(r"^fc(\d*|_\d+)(_weights|_offset|\.[wb]_\d+)$")
# names only a detector has (necks, RPN, box/mask/YOLO/RetinaNet/SSD heads)
_DETECTOR = re.compile(
    r"^(fpn_|conv_rpn|rpn_|cls_score|bbox_pred|fc[67](_[23])?_[wb]$|mask_inter_feat_|"
    r"mask_fcn_logits|conv5_mask_|retnet_|yolo_(block|output|transition)\.|conv7_\d_extra|"
    r"conv2d_\d+\.[wb]_0$)"
)


def is_classifier(name: str) -> bool:
    """Whether a legacy variable is an ImageNet classifier weight/bias (``fc_0.w_0``, ...)."""
    return bool(_CLASSIFIER.match(name))


def is_detector(names) -> bool:
    """Whether legacy variable names include any neck/head variable (else: a bare backbone)."""
    return any(_DETECTOR.match(n) for n in names)


def _resnet_depth(has) -> int:
    if has("res2a_branch2c_weights"):  # bottleneck
        if has("res4b35_branch2a_weights"):
            return 152
        return 101 if has("res4b22_branch2a_weights") else 50
    return 34 if has("res2c_branch2a_weights") else 18


def detect_backbone(names, shapes: Mapping[str, tuple] | None = None) -> str:
    """The ``LEGACY_MODELS`` key of a pretrained backbone from its variable names.

    ``shapes`` ({name: shape}) separates ResNeXt101-vd-64x4d from ResNet101-vd (same names).
    """
    names = set(names)
    has = names.__contains__
    shapes = shapes or {}
    if has("yolo_input.conv.weights"):
        arch = Arch("backbone", "darknet", 53, affine=False)
    elif has("conv2_1_dw_weights"):
        arch = Arch("backbone", "mobilenet_v1", 1, affine=False)
    elif has("conv4_1_x1_weights"):
        depth = 152 if has("conv6_36_x1_weights") else 0
        variant = "d" if has("conv1_1_weights") else "b"
        arch = Arch("backbone", "senet", depth, variant, affine=False)
    elif has("res2a_branch2a_weights"):
        depth = _resnet_depth(has)
        vd = has("conv1_1_weights")
        kind = "resnext" if has("res_conv1_weights") else "resnet"
        branch2b = shapes.get("res2a_branch2b_weights")
        if branch2b is not None:  # ResNeXt: grouped 3x3, [c, c / groups, 3, 3]
            kind = "resnext" if branch2b[1] != branch2b[0] else kind
        elif depth == 101 and vd:
            raise LegacyError(
                "ResNet101-vd or ResNeXt101-vd-64x4d pretrained: names alike; pass shapes= or model="
            )
        arch = Arch("backbone", kind, depth, "d" if vd else "b", affine=False)
    else:
        raise LegacyError(
            "no known v0.1 backbone variables (res2a_branch2a_weights, yolo_input.conv.weights, "
            "conv2_1_dw_weights, conv4_1_x1_weights); pass model= explicitly or check that this "
            "is a v0.1 checkpoint"
        )
    for key, spec in LEGACY_MODELS.items():
        if spec.arch == arch:
            return key
    raise LegacyError(
        f"no v0.1 pretrained {arch.backbone} depth {arch.depth} variant {arch.variant} is known; "
        "pass model= explicitly (a *_pretrained key of ppdet.zoo.legacy.LEGACY_MODELS)"
    )
