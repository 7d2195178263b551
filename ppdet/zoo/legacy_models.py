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
from collections.abc import Iterable, Mapping

from ppdet.zoo.legacy_families import FAMILIES, LegacyFamily, family_of, is_detector
from ppdet.zoo.legacy_format import LegacyError
from ppdet.zoo.legacy_rules import Arch, Rule

__all__ = [
    "LEGACY_MODELS",
    "LegacyModel",
    "detect_backbone",
    "is_classifier",
    "detect",
    "is_detector",
    "model_for",
]


@dataclasses.dataclass(frozen=True)
class LegacyModel:
    """One v0.1 checkpoint: its key (the tarball's name), the 2.x compat list it converts to,
    its class count and architecture, and the fluid-era ``behaviour`` its converted weights
    need (``{name: value}``, see ``legacy_families``)."""

    key: str
    target: str  # 2.x compat list name
    num_classes: int
    arch: Arch
    behaviour: dict
    notes: str = ""

    @property
    def family(self) -> LegacyFamily:
        return FAMILIES[self.arch.family]

    def rules(self) -> list[Rule]:
        return self.family.rules(self.arch)


IMAGENET_CLASSES = 1000


def _m(key: str, target: str, arch: Arch, num_classes: int = 80, notes: str = "") -> LegacyModel:
    """A row: behaviour and notes come from the family record (``notes`` adds to them)."""
    family = FAMILIES[arch.family]
    text = "; ".join(t for t in (family.notes(arch), notes) if t)
    return LegacyModel(key, target, num_classes, arch, family.behaviour(arch), text)


def _detectors() -> list[LegacyModel]:
    def r(**kw) -> Arch:
        return Arch("rcnn", **kw)

    fpn = {"fpn": True}
    vd, se = {"variant": "d"}, {"backbone": "senet", "depth": 152, "variant": "d"}
    return [
        _m("faster_rcnn_r50_1x", "faster_rcnn_r50", r()),
        _m("faster_rcnn_r50_2x", "faster_rcnn_r50", r()),
        _m("mask_rcnn_r50_1x", "mask_rcnn_r50", r(mask=True)),
        _m("mask_rcnn_r50_2x", "mask_rcnn_r50", r(mask=True)),
        _m("faster_rcnn_r50_vd_1x", "faster_rcnn_r50_vd", r(**vd)),
        _m("faster_rcnn_r50_fpn_1x", "faster_rcnn_r50_fpn", r(**fpn)),
        _m("faster_rcnn_r50_fpn_2x", "faster_rcnn_r50_fpn", r(**fpn)),
        _m("mask_rcnn_r50_fpn_1x", "mask_rcnn_r50_fpn", r(mask=True, **fpn)),
        _m("cascade_rcnn_r50_fpn_1x", "cascade_rcnn_r50_fpn", r(cascade=True, **fpn)),
        _m("faster_rcnn_r50_vd_fpn_2x", "faster_rcnn_r50_vd_fpn", r(**vd, **fpn)),
        _m("mask_rcnn_r50_vd_fpn_2x", "mask_rcnn_r50_vd_fpn", r(mask=True, **vd, **fpn)),
        _m("faster_rcnn_r101_1x", "faster_rcnn_r101", r(depth=101)),
        _m("faster_rcnn_r101_fpn_1x", "faster_rcnn_r101_fpn", r(depth=101, **fpn)),
        _m("faster_rcnn_r101_fpn_2x", "faster_rcnn_r101_fpn", r(depth=101, **fpn)),
        _m("mask_rcnn_r101_fpn_1x", "mask_rcnn_r101_fpn", r(depth=101, mask=True, **fpn)),
        _m("faster_rcnn_r101_vd_fpn_1x", "faster_rcnn_r101_vd_fpn", r(depth=101, **vd, **fpn)),
        _m(
            "faster_rcnn_r101_vd_fpn_2x",
            "faster_rcnn_r101_vd_fpn",
            r(depth=101, **vd, **fpn),
            notes="the v0.1 MODEL_ZOO links this row to faster_rcnn_r101_fpn_2x.tar (a typo "
            "upstream)",
        ),
        _m(
            "faster_rcnn_x101_vd_64x4d_fpn_1x",
            "faster_rcnn_x101_vd_64x4d_fpn",
            r(backbone="resnext", depth=101, **vd, **fpn),
        ),
        _m("faster_rcnn_se154_vd_fpn_s1x", "faster_rcnn_se154_vd_fpn", r(**se, **fpn)),
        _m("mask_rcnn_se154_vd_fpn_s1x", "mask_rcnn_se154_vd_fpn", r(**se, mask=True, **fpn)),
        _m("yolov3_darknet", "yolov3_darknet53", Arch("yolov3", "darknet", 53, affine=False)),
        _m(
            "yolov3_mobilenet_v1",
            "yolov3_mobilenet_v1",
            Arch("yolov3", "mobilenet_v1", 1, affine=False),
        ),
        _m("yolov3_r34", "yolov3_r34", Arch("yolov3", "resnet", 34, affine=False)),
        _m(
            "yolov3_r34_voc",
            "yolov3_r34",
            Arch("yolov3", "resnet", 34, affine=False),
            num_classes=20,
        ),
        _m("retinanet_r50_fpn_1x", "retinanet_r50_fpn", Arch("retinanet", depth=50, fpn=True)),
        _m("retinanet_r101_fpn_1x", "retinanet_r101_fpn", Arch("retinanet", depth=101, fpn=True)),
        _m(
            "ssd_mobilenet_v1_voc",
            "ssd_mobilenet_v1_voc",
            Arch("ssd", "mobilenet_v1", affine=False),
            num_classes=20,
        ),
    ]


def _backbones() -> list[LegacyModel]:
    """``<name>_pretrained.tar`` -> ``backbone_*`` list. The first row of an architecture is
    what detection returns (ResNet50_cos_pretrained: the seed zoo's R50 file)."""

    def b(key: str, target: str, backbone: str, depth: int, variant: str = "b", notes=""):
        arch = Arch("backbone", backbone, depth, variant, affine=False)
        return _m(key, target, arch, IMAGENET_CLASSES, notes)

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
        b(
            "EfficientNetB0_pretrained",
            "backbone_efficientnet_b0",
            "efficientnet",
            0,
            notes="PaddleClas / PaddleDetection v0.5 names (EfficientDet-D0's backbone)",
        ),
    ]
    return rows


LEGACY_MODELS: dict[str, LegacyModel] = {m.key: m for m in _detectors() + _backbones()}

# ImageNet classifiers of the image_classification models: fc_0.w_0 / fc_0.b_0 (ResNet),
# fc_weights / fc_offset (ResNet-vd, ResNeXt-vd, DarkNet), fc6_* (SE-ResNeXt), fc7_* (MobileNetV1);
# PaddleClas's EfficientNet head: _conv_head_weights, the top-level _bn1_*, _fc_weights/_offset
_CLASSIFIER = re.compile(
    r"^fc(\d*|_\d+)(_weights|_offset|\.[wb]_\d+)$"
    r"|^(_conv_head_weights|_bn1_(scale|offset|mean|variance)|_fc_(weights|offset))$"
)


def is_classifier(name: str) -> bool:
    """Whether a legacy variable belongs to an ImageNet classifier (``fc_0.w_0``, ...)."""
    return bool(_CLASSIFIER.match(name))


def _describe(arch: Arch) -> str:
    parts = [arch.family, arch.backbone, str(arch.depth), f"variant {arch.variant}"]
    parts += [k for k in ("fpn", "mask", "cascade") if getattr(arch, k)]
    return " ".join(parts)


def model_for(arch: Arch, num_classes: int | None = None) -> str:
    """The first ``LEGACY_MODELS`` key of this architecture (1x before 2x siblings, which
    convert identically), preferring one with ``num_classes`` when several fit."""
    rows = [m for m in LEGACY_MODELS.values() if m.arch == arch]
    if not rows:
        what = "pretrained backbone" if arch.family == "backbone" else "zoo model"
        raise LegacyError(
            f"no v0.1 {what} {_describe(arch)} is known; pass model= explicitly "
            "(a key of ppdet.zoo.legacy.LEGACY_MODELS)"
        )
    fitting = [m for m in rows if num_classes is not None and m.num_classes == num_classes]
    return (fitting or rows)[0].key


def detect_backbone(names: Iterable[str], shapes: Mapping[str, tuple] | None = None) -> str:
    """The ``LEGACY_MODELS`` key of a pretrained backbone from its variable names.

    ``shapes`` ({name: shape}) separates ResNeXt101-vd-64x4d from ResNet101-vd (same names).
    """
    names = set(names)
    return model_for(FAMILIES["backbone"].arch(names.__contains__, shapes or {}))


def detect(names: Iterable[str], shapes: Mapping[str, tuple] | None = None) -> str:
    """The ``LEGACY_MODELS`` key whose family and architecture fit these variable names
    (optimizer state already removed); ``shapes`` also picks the class count."""
    names = set(names)
    shapes = shapes or {}
    family = family_of(names)
    return model_for(family.arch(names.__contains__, shapes), family.classes(shapes))
