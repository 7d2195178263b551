"""Name tables: v0.1 (fluid 1.x) variable name -> PaddleDetection 2.x state_dict key, per
architecture, written as explicit naming rules (each family record in ``legacy_families``
names its builder). They produce exactly the variable lists v0.1 itself saves
(tests/fixtures/legacy_v01).

Every table is a list of ``Rule``s. ``op`` names the tensor transform (``ppdet.zoo.legacy``):

- ``copy``: same layout (conv [out, in/g, kh, kw], fc [in, out], deconv [in, out, kh, kw]);
- ``bg_last``: softmax classes on the last axis, background moved from index 0 to index C;
- ``drop_bg_delta``: class-specific deltas [in, 4(C+1)] -> [in, 4C] (background's 4 dropped);
- ``agnostic_slot1``: cascade class-agnostic deltas [in, 8] -> [in, 4] (slot 1, the foreground);
- ``drop_bg``: per-class mask logits [C+1, ...] -> [C, ...] (output axis 0);
- ``anchor_perm``: output channel a*K + k -> perm-ordered anchors (``arg`` = legacy index of
  each 2.x anchor; K = channels per anchor, from the shape);
- ``ssd_conf``: SSD conf [p(C+1), ...]: background moved to the end inside each prior (``arg`` = p);
- ``zeros`` / ``unit_var``: synthesized BN ``_mean`` = 0 / ``_variance`` = 1 - 1e-5 for an
  affine-channel layer (``legacy`` is None, ``src`` = the scale variable giving the shape).
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "Arch",
    "Rule",
    "backbone_rules",
    "efficientnet_rules",
    "rcnn_rules",
    "retinanet_rules",
    "ssd_rules",
    "yolov3_rules",
]

AFFINE_VAR = 1.0 - 1e-5  # float32(1 - 1e-5) + float32(1e-5) == 1 exactly: sqrt(var + eps) = 1


@dataclasses.dataclass(frozen=True)
class Rule:
    legacy: str | None
    target: str
    op: str = "copy"
    arg: tuple = ()
    src: str | None = None


@dataclasses.dataclass(frozen=True)
class Arch:
    """What the legacy program built. family: rcnn | retinanet | yolov3 | ssd | backbone (an
    ImageNet-pretrained backbone alone, real BN, 2.x names prefixed ``backbone.``)."""

    family: str
    backbone: str = "resnet"  # resnet | resnext | senet | darknet | mobilenet_v1 | efficientnet
    depth: int = 50  # EfficientNet: the scale (0 for B0)
    variant: str = "b"
    fpn: bool = False
    mask: bool = False
    cascade: bool = False
    affine: bool = True  # backbone norms are affine channels (scale/offset only)


_RESNET_DEPTHS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def _bn(names: tuple[str, str, str, str], target: str, affine: bool) -> list[Rule]:
    """BN/affine-channel rules: legacy (scale, offset, mean, variance) -> target.{weight, ...}."""
    scale, offset, mean, var = names
    out = [Rule(scale, f"{target}.weight"), Rule(offset, f"{target}.bias")]
    if affine:
        out += [
            Rule(None, f"{target}._mean", "zeros", src=scale),
            Rule(None, f"{target}._variance", "unit_var", src=scale),
        ]
    else:
        out += [Rule(mean, f"{target}._mean"), Rule(var, f"{target}._variance")]
    return out


def _lin(
    legacy: str, target: str, op: str = "copy", arg: tuple = (), w: str = "_w", b: str = "_b"
) -> list[Rule]:
    """A conv/fc with bias: ``<legacy>_w`` / ``<legacy>_b`` -> ``<target>.weight`` / ``.bias``."""
    return [
        Rule(legacy + w, f"{target}.weight", op, arg),
        Rule(legacy + b, f"{target}.bias", op, arg),
    ]


# ---------------------------------------------------------------- ResNet / ResNeXt / SENet


def _block_name(stage: int, i: int, count: int) -> str:
    """res4a, res4b1 ... res4b22 for a stage with more than 10 blocks; else res2a, res2b, ..."""
    if count > 10 and stage == 4:
        return "res4a" if i == 0 else f"res4b{i}"
    return f"res{stage}{chr(ord('a') + i)}"


def _res_unit(conv: str, target: str, se: bool, affine: bool) -> list[Rule]:
    """conv + norm: ``<conv>_weights`` and ``bn<conv[3:]>_*`` (SENet: ``<conv>_bn_*``)."""
    bn = f"{conv}_bn" if se else ("bn_conv1" if conv == "conv1" else "bn" + conv[3:])
    names = (f"{bn}_scale", f"{bn}_offset", f"{bn}_mean", f"{bn}_variance")
    return [Rule(f"{conv}_weights", f"{target}.conv.weight"), *_bn(names, f"{target}.norm", affine)]


def resnet_rules(
    arch: Arch,
    stages: tuple[int, ...] = (2, 3, 4, 5),
    prefix: str = "backbone",
    stem: bool = True,
    force_b: bool = False,
) -> list[Rule]:
    """ResNet-B/D, ResNeXt (same names) and SENet (``4_1``-style names) backbones.

    ``force_b``: variant-b shortcut names (the 2.x C4 Res5Head), whatever the legacy variant.
    """
    se = arch.backbone == "senet"
    depth = 152 if se else arch.depth
    counts = _RESNET_DEPTHS[depth]
    bottleneck = depth >= 50
    out: list[Rule] = []
    if stem and arch.variant == "d":
        for k in (1, 2, 3):
            out += _res_unit(f"conv1_{k}", f"{prefix}.conv1.conv1_{k}", se, arch.affine)
    elif stem:
        out += _res_unit("conv1", f"{prefix}.conv1.conv1", se, arch.affine)
    for stage in stages:
        count = counts[stage - 2]
        for i in range(count):
            new = _block_name(stage, i, count)
            old = f"{stage + 2}_{i + 1}" if se else new
            target = f"{prefix}.res{stage}.{new}"
            for x, branch in enumerate(("2a", "2b", "2c") if bottleneck else ("2a", "2b")):
                conv = f"conv{old}_x{x + 1}" if se else f"{old}_branch{branch}"
                out += _res_unit(conv, f"{target}.branch{branch}", se, arch.affine)
            if i == 0:
                pooled = arch.variant == "d" and stage > 2 and not force_b
                conv = f"conv{old}_prj" if se else f"{old}_branch1"
                out += _res_unit(
                    conv, f"{target}.short.conv" if pooled else f"{target}.short", se, arch.affine
                )
            if se:
                for part, name in (("sqz", "squeeze"), ("exc", "extract")):
                    out += _lin(f"fc{old}_{part}", f"{target}.se.{name}", w="_weights", b="_offset")
    return out


# ---------------------------------------------------------------- DarkNet / MobileNetV1 / YOLOv3


def _dot_unit(name: str, target: str, norm: str = "batch_norm") -> list[Rule]:
    """YOLOv3-style dotted names: ``<n>.conv.weights`` + ``<n>.bn.{scale,offset,mean,var}``."""
    names = tuple(f"{name}.bn.{s}" for s in ("scale", "offset", "mean", "var"))
    return [
        Rule(f"{name}.conv.weights", f"{target}.conv.weight"),
        *_bn(names, f"{target}.{norm}", False),
    ]


def darknet_rules() -> list[Rule]:
    out = _dot_unit("yolo_input", "backbone.conv0")
    out += _dot_unit("yolo_input.downsample", "backbone.downsample0.conv_bn_layer")
    for i, count in enumerate((1, 2, 8, 8, 4)):
        for j in range(count):
            block = f"backbone.stage.{i}." + ("basicblock0" if j == 0 else f"stage.{i}.{j}")
            for k in (0, 1):
                out += _dot_unit(f"stage.{i}.{j}.{k}", f"{block}.conv{k + 1}")
        if i < 4:
            out += _dot_unit(
                f"stage.{i}.downsample", f"backbone.stage.{i}.downsample.conv_bn_layer"
            )
    return out


_MOBILENET_BLOCKS = (
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv4_1",
    "conv4_2",
    *(f"conv5_{k}" for k in range(1, 7)),
    "conv6",
)


def _mb_unit(conv: str, target: str) -> list[Rule]:
    names = tuple(f"{conv}_bn_{s}" for s in ("scale", "offset", "mean", "variance"))
    return [
        Rule(f"{conv}_weights", f"{target}._conv.weight"),
        *_bn(names, f"{target}._batch_norm", False),
    ]


def mobilenet_v1_rules(extra_blocks: bool) -> list[Rule]:
    out = _mb_unit("conv1", "backbone.conv1")
    for block in _MOBILENET_BLOCKS:
        out += _mb_unit(f"{block}_dw", f"backbone.{block}._depthwise_conv")
        out += _mb_unit(f"{block}_sep", f"backbone.{block}._pointwise_conv")
    if extra_blocks:
        for k in (1, 2, 3, 4):
            out += _mb_unit(f"conv7_{k}_extra1", f"backbone.conv7_{k}.pointwise_conv")
            out += _mb_unit(f"conv7_{k}_extra2", f"backbone.conv7_{k}.normal_conv")
    return out


def yolov3_rules(arch: Arch) -> list[Rule]:
    if arch.backbone == "darknet":
        out = darknet_rules()
    elif arch.backbone == "mobilenet_v1":
        out = mobilenet_v1_rules(extra_blocks=False)
    else:
        out = resnet_rules(arch)
    parts = (
        ("0.0", "conv_module.conv0"),
        ("0.1", "conv_module.conv1"),
        ("1.0", "conv_module.conv2"),
        ("1.1", "conv_module.conv3"),
        ("2", "conv_module.route"),
        ("tip", "tip"),
    )
    for i in range(3):  # i = 0 is the stride-32 level in both
        for old, new in parts:
            out += _dot_unit(f"yolo_block.{i}.{old}", f"neck.yolo_block.{i}.{new}")
        if i < 2:
            out += _dot_unit(f"yolo_transition.{i}", f"neck.yolo_transition.{i}")
        out += _lin(f"yolo_output.{i}.conv", f"yolo_head.yolo_output.{i}", w=".weights", b=".bias")
    return out


# ---------------------------------------------------------------- detection heads

# C4 RPN: legacy anchor index r*5 + s (ratio major); 2.x index s*3 + r (size major).
RPN_C4_PERM = tuple(r * 5 + s for s in range(5) for r in range(3))
# RetinaNet: legacy ratios [1, 2, 0.5], index r*3 + s; 2.x ratios [0.5, 1, 2], index s*3 + r.
RETINA_PERM = tuple(
    {0.5: 2, 1.0: 0, 2.0: 1}[ratio] * 3 + s for s in range(3) for ratio in (0.5, 1.0, 2.0)
)
SSD_PRIORS = (3, 6, 6, 6, 6, 6)
SSD_FIRST_AUTO = 22  # conv2d_22 ... conv2d_33: loc, conf per map (after 22 backbone conv2d)


def fpn_rules(levels: tuple[int, ...], extra: bool) -> list[Rule]:
    out = _lin(f"fpn_inner_res{levels[-1]}_sum", f"neck.fpn_inner_res{levels[-1]}_sum")
    for k in levels[:-1]:
        out += _lin(f"fpn_inner_res{k}_sum_lateral", f"neck.fpn_inner_res{k}_sum_lateral")
    for k in levels:
        out += _lin(f"fpn_res{k}_sum", f"neck.fpn_res{k}_sum")
    if extra:
        out += _lin("fpn_6", "neck.fpn_6") + _lin("fpn_7", "neck.fpn_7")
    return out


def rcnn_rules(arch: Arch) -> list[Rule]:
    if arch.fpn:
        out = resnet_rules(arch) + fpn_rules((2, 3, 4, 5), extra=False)
        sfx, perm = "_fpn2", ()
    else:
        res5 = dataclasses.replace(
            arch, depth=50
        )  # the 2.x Res5Head is depth-50 / variant-b shaped
        out = resnet_rules(arch, stages=(2, 3, 4))
        out += resnet_rules(res5, stages=(5,), prefix="bbox_head.head", stem=False, force_b=True)
        sfx, perm = "", RPN_C4_PERM
    out += _lin(f"conv_rpn{sfx}", "rpn_head.rpn_feat.rpn_conv")
    op = "anchor_perm" if perm else "copy"
    out += _lin(f"rpn_cls_logits{sfx}", "rpn_head.rpn_rois_score", op, perm)
    out += _lin(f"rpn_bbox_pred{sfx}", "rpn_head.rpn_rois_delta", op, perm)
    if arch.cascade:
        for k, s in enumerate(("", "_2", "_3")):
            out += _lin(f"fc6{s}", f"bbox_head.head.{k}.fc6") + _lin(
                f"fc7{s}", f"bbox_head.head.{k}.fc7"
            )
            out += _lin(f"cls_score{s}", f"bbox_head.bbox_score_stage{k}", "bg_last")
            out += _lin(f"bbox_pred{s}", f"bbox_head.bbox_delta_stage{k}", "agnostic_slot1")
    else:
        if arch.fpn:
            out += _lin("fc6", "bbox_head.head.fc6") + _lin("fc7", "bbox_head.head.fc7")
        out += _lin("cls_score", "bbox_head.bbox_score", "bg_last")
        out += _lin("bbox_pred", "bbox_head.bbox_delta", "drop_bg_delta")
    if arch.mask:
        if arch.fpn:
            for k in (1, 2, 3, 4):
                out += _lin(f"mask_inter_feat_{k}", f"mask_head.head.upsample.mask_inter_feat_{k}")
        out += _lin("conv5_mask", "mask_head.head.upsample.conv5_mask")
        out += _lin("mask_fcn_logits", "mask_head.mask_fcn_logits", "drop_bg")
    return out


def retinanet_rules(arch: Arch) -> list[Rule]:
    out = resnet_rules(arch) + fpn_rules((3, 4, 5), extra=True)
    for tower, new in (("cls", "cls"), ("bbox", "reg")):
        for n in range(4):
            out += _lin(
                f"retnet_{tower}_conv_n{n}_fpn3",
                f"head.conv_feat.fcos_head_{new}_tower_conv_{n}.conv",
            )
    out += _lin("retnet_cls_pred_fpn3", "head.retina_cls", "anchor_perm", RETINA_PERM)
    out += _lin("retnet_bbox_pred_fpn3", "head.retina_reg", "anchor_perm", RETINA_PERM)
    return out


def ssd_rules() -> list[Rule]:
    out = mobilenet_v1_rules(extra_blocks=True)
    for i, priors in enumerate(SSD_PRIORS):
        loc, conf = SSD_FIRST_AUTO + 2 * i, SSD_FIRST_AUTO + 2 * i + 1
        out += _lin(f"conv2d_{loc}", f"ssd_head.boxes{i}", w=".w_0", b=".b_0")
        out += _lin(
            f"conv2d_{conf}", f"ssd_head.scores{i}", "ssd_conf", (priors,), w=".w_0", b=".b_0"
        )
    return out


# ---------------------------------------------------------------- EfficientNet-B0

EFFICIENTNET_B0_BLOCKS = 16  # blocks 1..15 expand (ratio 6); block 0 does not (ratio 1)


def efficientnet_rules() -> list[Rule]:
    """EfficientNet-B0 as PaddleDetection v0.5 / PaddleClas name it (``_conv_stem_weights``,
    ``_bn0_scale``, ``_blocks.{n}._se_reduce_offset``, ...): our parameters have the same names
    with the fluid suffixes written the 2.x way (``_conv_stem.weight``, ``_bn0.weight``, ...)."""

    def conv(name: str) -> list[Rule]:
        return [Rule(f"{name}_weights", f"backbone.{name}.weight")]

    def bn(name: str) -> list[Rule]:
        stats = tuple(f"{name}_{s}" for s in ("scale", "offset", "mean", "variance"))
        return _bn(stats, f"backbone.{name}", affine=False)

    out = conv("_conv_stem") + bn("_bn0")
    for i in range(EFFICIENTNET_B0_BLOCKS):
        block = f"_blocks.{i}."
        if i > 0:
            out += conv(block + "_expand_conv") + bn(block + "_bn0")
        out += conv(block + "_depthwise_conv") + bn(block + "_bn1")
        for se in ("_se_reduce", "_se_expand"):
            out += _lin(block + se, f"backbone.{block}{se}", w="_weights", b="_offset")
        out += conv(block + "_project_conv") + bn(block + "_bn2")
    return out


def backbone_rules(arch: Arch) -> list[Rule]:
    """A pretrained backbone alone (all 4 ResNet stages; MobileNetV1 without extra blocks;
    EfficientNet-B0 without its classifier head)."""
    if arch.backbone == "efficientnet":
        return efficientnet_rules()
    if arch.backbone == "darknet":
        return darknet_rules()
    if arch.backbone == "mobilenet_v1":
        return mobilenet_v1_rules(extra_blocks=False)
    return resnet_rules(arch)
