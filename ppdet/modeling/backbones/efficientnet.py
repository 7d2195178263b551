"""EfficientNet (Tan & Le 2019) as a detection backbone: the stem and the seven MBConv stages,
returning C3-C5 (strides 8, 16, 32), as EfficientDet uses it.

An MBConv block (inverted residual with squeeze-and-excitation):

    [1x1 expand conv -> BN -> swish]  (expand ratio > 1)
    kxk depthwise conv (stride) -> BN -> swish
    SE: global average -> 1x1 conv (bias) -> swish -> 1x1 conv (bias) -> sigmoid -> scale
    1x1 project conv -> BN
    + input, when the stride is 1 and the channels are kept, after drop-connect in training

Every convolution pads like TensorFlow's "SAME" (the published weights were trained that way):
a map of H becomes ceil(H / stride), so C3-C5 of an H x W image are ceil(H/s) x ceil(W/s).
BN: epsilon 1e-3, momentum 0.99 (``running = 0.99 running + 0.01 batch``). Drop-connect
(stochastic depth) drops a residual block's branch per sample with probability
``drop_connect_rate * i / num_blocks`` for block i, scaling the kept ones by 1 / keep.

Parameter layout: PaddleDetection v0.5's ``EfficientNet`` backbone (the EfficientDet-D0
config), itself PaddleClas's EfficientNet naming, with fluid's ``<name>_weights`` /
``_scale`` / ``_offset`` / ``_mean`` / ``_variance`` written the 2.x way: ``_conv_stem.weight``,
``_bn0.{weight,bias,_mean,_variance}``, ``_blocks.{n}._expand_conv.weight``, ``_blocks.{n}._bn0``,
``_blocks.{n}._depthwise_conv.weight``, ``_bn1``, ``_se_reduce.{weight,bias}``,
``_se_expand.{weight,bias}``, ``_project_conv.weight``, ``_bn2``, blocks numbered 0..15 (B0)
across stages. v0.5's EfficientDet-D0 config points ``pretrain_weights`` at PaddleClas's ImageNet
tarball ``EfficientNetB0_pretrained.tar`` (fluid variables of exactly these names); our configs
do too, and ``ppdet.zoo.legacy`` converts it on load, skipping its classifier head
(``_conv_head``, the top-level ``_bn1``, ``_fc``). A tarball written by v0.5's own EfficientNet
on fluid 1.8 gives v0.5's C3-C5 within 7e-7 (``bench/compare_efficientnet_v05.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, KaimingNormal

from ppdet.config.registry import register
from ppdet.modeling.layers.norms import build_norm, fit_num_groups

__all__ = ["EfficientNet", "MBConvBlock"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.99


@dataclass(frozen=True)
class StageArgs:
    """One stage of B0: kernel, repeats, stride, expand ratio, in/out channels, SE ratio."""

    kernel: int
    repeats: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int
    se_ratio: float = 0.25


B0_STAGES = (
    StageArgs(3, 1, 1, 1, 32, 16),
    StageArgs(3, 2, 2, 6, 16, 24),
    StageArgs(5, 2, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(5, 3, 1, 6, 80, 112),
    StageArgs(5, 4, 2, 6, 112, 192),
    StageArgs(3, 1, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
# scale -> (width coefficient, depth coefficient)
SCALES = {
    "b0": (1.0, 1.0),
    "b1": (1.0, 1.1),
    "b2": (1.1, 1.2),
    "b3": (1.2, 1.4),
    "b4": (1.4, 1.8),
    "b5": (1.6, 2.2),
    "b6": (1.8, 2.6),
    "b7": (2.0, 3.1),
}
DEPTH_DIVISOR = 8


def round_filters(channels: int, width: float) -> int:
    """Channels scaled by ``width``, rounded to a multiple of 8, never more than 10% down."""
    scaled = channels * width
    rounded = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += DEPTH_DIVISOR
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False):
    """Conv2D with TensorFlow "SAME" padding (H -> ceil(H / stride))."""
    return nn.Conv2D(
        c_in,
        c_out,
        k,
        stride=stride,
        padding="SAME",
        groups=groups,
        weight_attr=ParamAttr(initializer=KaimingNormal()),
        bias_attr=ParamAttr(initializer=Constant(0.0)) if bias else False,
    )


def _swish_unless_fused(norm: nn.Layer, x: paddle.Tensor) -> paddle.Tensor:
    """swish after a norm, unless the norm is its own activation (EvoNorm)."""
    return x if getattr(norm, "fuses_activation", False) else F.swish(x)


def drop_connect(x: paddle.Tensor, rate: float, training: bool) -> paddle.Tensor:
    """Zero each sample's x [B, ...] with probability ``rate`` and scale the rest by
    1 / (1 - rate); identity in eval or when rate is 0."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    shape = [paddle.shape(x)[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep + paddle.rand(shape, dtype=x.dtype))  # 1 with probability keep
    return x / keep * mask


class MBConvBlock(nn.Layer):
    """Inverted residual block with SE (see the module docstring).

    x: [B, in_ch, H, W] -> [B, out_ch, ceil(H / stride), ceil(W / stride)].
    norm_kw: ``build_norm`` arguments (norm_type, norm_decay, freeze_norm, num_groups).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        expand: int,
        se_ratio: float | None,
        drop_rate: float,
        norm_kw: dict,
    ):
        super().__init__()
        mid = in_ch * expand

        def norm(channels: int, nonlinear: bool = True) -> nn.Layer:
            groups = fit_num_groups(channels, norm_kw.get("num_groups", 32))
            kw = {**norm_kw, "num_groups": groups}
            return build_norm(channels, nonlinear=nonlinear, eps=BN_EPS, momentum=BN_MOMENTUM, **kw)

        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _conv(in_ch, mid, 1)
            self._bn0 = norm(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = norm(mid)
        self.has_se = se_ratio is not None and se_ratio > 0
        if self.has_se:
            squeezed = max(1, int(in_ch * se_ratio))
            self._se_reduce = _conv(mid, squeezed, 1, bias=True)
            self._se_expand = _conv(squeezed, mid, 1, bias=True)
        self._project_conv = _conv(mid, out_ch, 1)
        self._bn2 = norm(out_ch, nonlinear=False)
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_rate = drop_rate

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = x
        if self.expand:
            y = _swish_unless_fused(self._bn0, self._bn0(self._expand_conv(y)))  # [B, mid, H, W]
        y = _swish_unless_fused(self._bn1, self._bn1(self._depthwise_conv(y)))  # stride applied
        if self.has_se:
            s = F.adaptive_avg_pool2d(y, 1)  # [B, mid, 1, 1]
            s = self._se_expand(F.swish(self._se_reduce(s)))  # [B, mid, 1, 1]
            y = y * F.sigmoid(s)
        y = self._bn2(self._project_conv(y))  # [B, out, H', W']
        if self.residual:
            y = drop_connect(y, self.drop_rate, self.training) + x
        return y


@register("backbone")
class EfficientNet(nn.Layer):
    """EfficientNet-B0..B7 feature extractor (see the module docstring).

    forward(image [B, 3, H, W]) -> the maps of the stages in ``return_idx``; with the default
    [2, 4, 6]: C3, C4, C5 of B0 = [B, 40, ceil(H/8), ceil(W/8)], [B, 112, ceil(H/16), ...],
    [B, 320, ceil(H/32), ...].

    Args:
        scale: "b0" .. "b7" (width / depth coefficients; resolution is the reader's choice).
        use_se: squeeze-and-excitation in every block.
        return_idx: stages (0-6) whose last block's output is returned; their strides are
            2, 4, 8, 16, 16, 32, 32.
        drop_connect_rate: stochastic-depth rate of the last block (linear in the block index;
            0.2 as EfficientNet's training; 0 turns it off).
        norm_type, norm_decay, freeze_norm: of every norm (``build_norm``; BN epsilon 1e-3,
            momentum 0.99); norm_groups: "gn" / "evonorm_s0" groups, fitted to each width.

    Attributes: out_channels, out_strides of the returned maps.
    """

    def __init__(
        self,
        scale: str = "b0",
        use_se: bool = True,
        return_idx: Sequence[int] = (2, 4, 6),
        drop_connect_rate: float = 0.2,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        norm_groups: int = 32,
    ):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"EfficientNet: scale must be one of {sorted(SCALES)}, got {scale!r}")
        return_idx = [int(i) for i in return_idx]
        if (
            not return_idx
            or sorted(set(return_idx)) != return_idx
            or not (0 <= return_idx[0] and return_idx[-1] < len(B0_STAGES))
        ):
            raise ValueError(
                f"EfficientNet: return_idx must be increasing stage indices in 0..6, got "
                f"{return_idx}"
            )
        if not 0.0 <= drop_connect_rate < 1.0:
            raise ValueError(
                f"EfficientNet: drop_connect_rate must be in [0, 1), got {drop_connect_rate}"
            )
        width, depth = SCALES[scale]
        norm_kw = dict(
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            num_groups=norm_groups,
        )
        stem = round_filters(STEM_CHANNELS, width)
        self._conv_stem = _conv(3, stem, 3, stride=2)
        self._bn0 = build_norm(
            stem,
            norm_type,
            norm_decay,
            freeze_norm,
            fit_num_groups(stem, norm_groups),
            eps=BN_EPS,
            momentum=BN_MOMENTUM,
        )
        plan = []  # (stage, in, out, kernel, stride, expand, se)
        for stage, args in enumerate(B0_STAGES):
            c_in, c_out = round_filters(args.in_ch, width), round_filters(args.out_ch, width)
            for r in range(round_repeats(args.repeats, depth)):
                first = r == 0
                plan.append(
                    (
                        stage,
                        c_in if first else c_out,
                        c_out,
                        args.kernel,
                        args.stride if first else 1,
                        args.expand,
                        args.se_ratio if use_se else None,
                    )
                )
        blocks = []
        for i, (_, c_in, c_out, k, s, e, se) in enumerate(plan):
            rate = drop_connect_rate * i / len(plan)
            blocks.append(MBConvBlock(c_in, c_out, k, s, e, se, rate, norm_kw))
        self._blocks = nn.LayerList(blocks)
        self.stage_ends = [max(i for i, p in enumerate(plan) if p[0] == st) for st in return_idx]
        stride, strides = 2, []
        for args in B0_STAGES:
            stride *= args.stride
            strides.append(stride)
        self.return_idx = return_idx
        self.out_channels = [round_filters(B0_STAGES[i].out_ch, width) for i in return_idx]
        self.out_strides = [strides[i] for i in return_idx]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        x = self._bn0(self._conv_stem(image))  # [B, stem, ceil(H/2), ceil(W/2)]
        x = _swish_unless_fused(self._bn0, x)
        outs = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.stage_ends:
                outs.append(x)
        return outs
