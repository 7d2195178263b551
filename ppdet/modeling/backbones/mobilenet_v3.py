"""MobileNetV3 backbone (Howard et al., "Searching for MobileNetV3", 2019), with SSDLite extras.

A 3x3 stride-2 stem ``conv1`` (hard-swish) is followed by inverted-residual blocks ``conv2`` ..
``convN`` (N = 16 for "large", 12 for "small"). Each block is a 1x1 expansion
(``expand_conv``), a k x k depthwise conv (``bottleneck_conv``), an optional squeeze-and-excite
(``mid_se``: 1x1 convs with bias, ReLU then hard-sigmoid) and a 1x1 linear projection
(``linear_conv``); the input is added when the shape is unchanged. Channels are ``scale`` times
the paper's, rounded to a multiple of 8 (never more than 10% down). ``multiplier`` scales the
channels of the last stage (SSDLite uses 0.5).

``feature_maps`` index k (2 <= k <= N) selects block ``conv{k}``:

- without extra blocks, its output (large: 7, 13, 16 -> 40, 112, 160 channels at strides
  8, 16, 32; small: 4, 9, 12 -> 24, 48, 96 channels at strides 8, 16, 32);
- with extra blocks (SSDLite), its expansion output, taken before the depthwise stride (large
  14 -> 672 channels at stride 16). Index N+1 is then the 1x1 conv ``conv{N+1}`` after the last
  block and N+2 .. N+5 the four extra blocks ``conv{N+2..N+5}`` (1x1, 3x3 depthwise stride 2
  with "SAME" padding, 1x1), each halving the map: SSDLite-large uses [14, 17, 18, 19, 20, 21].

Sublayer names equal PaddleDetection 2.x, so its ``.pdparams`` load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import KaimingNormal
from paddle.regularizer import L2Decay

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import ConvNormLayer

__all__ = ["MobileNetV3"]

# (kernel, expansion channels, output channels, squeeze-excite, activation, stride) per block
# conv2, conv3, ... before scaling; the last entry of each table is the 1x1 conv after them.
LARGE_BLOCKS = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hard_swish", 2),
    (3, 200, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1),
    (3, 480, 112, True, "hard_swish", 1),
    (3, 672, 112, True, "hard_swish", 1),
    (5, 672, 160, True, "hard_swish", 2),
    (5, 960, 160, True, "hard_swish", 1),
    (5, 960, 160, True, "hard_swish", 1),
)
SMALL_BLOCKS = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 120, 48, True, "hard_swish", 1),
    (5, 144, 48, True, "hard_swish", 1),
    (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1),
    (5, 576, 96, True, "hard_swish", 1),
)
MODELS = {"large": (LARGE_BLOCKS, 960), "small": (SMALL_BLOCKS, 576)}
STEM_CHANNELS = 16
SE_REDUCTION = 4
ACTIVATIONS = (None, "relu", "relu6", "hard_swish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), going up
    one step when rounding would lose more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _activate(x: paddle.Tensor, act: str | None) -> paddle.Tensor:
    if act is None:
        return x
    if act == "relu":
        return F.relu(x)
    if act == "relu6":
        return F.relu6(x)
    return F.hardswish(x)


def _scale_lr(layer: nn.Layer, lr_mult: float) -> None:
    """Multiply the learning rate of every parameter of ``layer`` by ``lr_mult``."""
    if lr_mult == 1.0:
        return
    for param in layer.parameters():
        param.optimize_attr["learning_rate"] = param.optimize_attr["learning_rate"] * lr_mult


class ConvBN(ConvNormLayer):
    """Conv2D (no bias) -> BN (``conv``, ``bn``) -> activation in ``ACTIVATIONS``.

    x: [B, in, H, W] -> [B, out, ceil(H / stride), ceil(W / stride)]. ``same_padding`` pads as
    TensorFlow's "SAME" (extra row/column at the bottom/right), as SSDLite's extra blocks do;
    otherwise the padding is (kernel - 1) // 2 on every side.
    """

    sublayer_names = ("conv", "bn")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
        same_padding: bool = False,
        conv_decay: float = 0.0,
        **norm_kw,
    ):
        if act not in ACTIVATIONS:
            raise ValueError(f"MobileNetV3 unknown activation {act!r} (known: {ACTIVATIONS})")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            groups,
            act=None,  # applied in forward (ConvNormLayer has no hard-swish)
            conv_decay=conv_decay,
            **norm_kw,
        )
        self.conv_act = act
        if same_padding:
            self.conv = nn.Conv2D(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding="SAME",
                groups=groups,
                weight_attr=ParamAttr(initializer=KaimingNormal(), regularizer=L2Decay(conv_decay)),
                bias_attr=False,
            )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return _activate(self.bn(self.conv(x)), self.conv_act)


class SEModule(nn.Layer):
    """Squeeze-and-excite: x * hardsigmoid(conv2(relu(conv1(avgpool(x))))), [B, C, H, W] kept.

    ``conv1`` (C -> C/4) and ``conv2`` (C/4 -> C) are 1x1 convs with bias.
    """

    def __init__(self, channels: int, conv_decay: float = 0.0):
        super().__init__()
        mid = channels // SE_REDUCTION
        attr = dict(
            weight_attr=ParamAttr(regularizer=L2Decay(conv_decay)),
            bias_attr=ParamAttr(regularizer=L2Decay(conv_decay)),
        )
        self.conv1 = nn.Conv2D(channels, mid, 1, **attr)
        self.conv2 = nn.Conv2D(mid, channels, 1, **attr)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        w = F.adaptive_avg_pool2d(x, 1)  # [B, C, 1, 1]
        w = F.hardsigmoid(self.conv2(F.relu(self.conv1(w))), slope=0.2, offset=0.5)
        return x * w


class ResidualUnit(nn.Layer):
    """Inverted residual block: 1x1 expand, k x k depthwise (stride), SE, 1x1 linear.

    forward(x [B, in, H, W]) -> (out [B, out, H/s, W/s], expanded [B, mid, H, W]).
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        use_se: bool,
        act: str,
        **conv_kw,
    ):
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBN(in_channels, mid_channels, 1, act=act, **conv_kw)
        self.bottleneck_conv = ConvBN(
            mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act, **conv_kw
        )
        self.mid_se = SEModule(mid_channels, conv_kw["conv_decay"]) if use_se else None
        self.linear_conv = ConvBN(mid_channels, out_channels, 1, act=None, **conv_kw)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        expanded = self.expand_conv(x)
        y = self.bottleneck_conv(expanded)
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        if self.use_shortcut:
            y = x + y
        return y, expanded


class ExtraBlockDW(nn.Layer):
    """SSDLite extra block: 1x1 (in -> c0), 3x3 depthwise stride 2 (c0 -> c1, groups c0), 1x1
    (c1 -> c1), each BN + ReLU6 with "SAME" padding. [B, in, H, W] -> [B, c1, ceil(H/2), ceil(W/2)].
    """

    def __init__(self, in_channels: int, c0: int, c1: int, **conv_kw):
        super().__init__()
        kw = dict(act="relu6", same_padding=True, **conv_kw)
        self.pointwise_conv = ConvBN(in_channels, c0, 1, **kw)
        self.depthwise_conv = ConvBN(c0, c1, 3, stride=2, groups=c0, **kw)
        self.normal_conv = ConvBN(c1, c1, 1, **kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.normal_conv(self.depthwise_conv(self.pointwise_conv(x)))


@register("backbone")
class MobileNetV3(nn.Layer):
    """MobileNetV3 "large" or "small" backbone (optionally with SSDLite's extra layers).

    forward(image [B, 3, H, W]) -> one map per ``feature_maps`` index (see the module docstring),
    [B, out_channels[k], H / out_strides[k], W / out_strides[k]] (sizes rounded up).

    Args:
        model_name: "large" or "small".
        scale: width multiplier (channels rounded to multiples of 8).
        feature_maps: indices to return, in increasing order.
        with_extra_blocks: build ``conv{N+1}`` and the four SSDLite extra blocks.
        extra_block_filters: (c0, c1) of each extra block.
        lr_mult_list: learning-rate multipliers; the stem and blocks 0-2 use the first, block i
            the entry i // 3 (capped at the last), the extra layers the last.
        conv_decay: L2 decay on conv weights (and the SE convs' biases).
        multiplier: channel multiplier for the last stage and the 1x1 conv after it.
        norm_type, norm_decay, freeze_norm: the BN layers (see ``build_norm``).
    """

    def __init__(
        self,
        model_name: str = "large",
        scale: float = 1.0,
        feature_maps: Sequence[int] = (6, 12, 15),
        with_extra_blocks: bool = False,
        extra_block_filters: Sequence[Sequence[int]] = (
            (256, 512),
            (128, 256),
            (128, 256),
            (64, 128),
        ),
        lr_mult_list: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0),
        conv_decay: float = 0.0,
        multiplier: float = 1.0,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
    ):
        super().__init__()
        if model_name not in MODELS:
            raise ValueError(
                f"MobileNetV3 model_name {model_name!r} is not one of {sorted(MODELS)}"
            )
        if not lr_mult_list:
            raise ValueError("MobileNetV3 lr_mult_list must not be empty")
        blocks, last_channels = MODELS[model_name]
        num_blocks = len(blocks)
        extras = [tuple(f) for f in extra_block_filters] if with_extra_blocks else []
        if any(len(f) != 2 for f in extras):
            raise ValueError(
                f"MobileNetV3 extra_block_filters {list(extra_block_filters)} must be "
                "[c0, c1] pairs"
            )
        last_idx = num_blocks + 1 + (1 + len(extras) if with_extra_blocks else 0)
        self.feature_maps = sorted(feature_maps)
        if not self.feature_maps or not set(self.feature_maps) <= set(range(2, last_idx + 1)):
            raise ValueError(
                f"MobileNetV3 feature_maps {list(feature_maps)} must be within 2..{last_idx} "
                f"for model_name {model_name!r} (with_extra_blocks={with_extra_blocks})"
            )
        self.with_extra_blocks = with_extra_blocks
        blocks = self._apply_multiplier(blocks, multiplier)
        conv_kw = dict(
            conv_decay=conv_decay,
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
        )

        def lr_of(i: int) -> float:
            return lr_mult_list[min(i // 3, len(lr_mult_list) - 1)]

        in_ch = make_divisible(scale * STEM_CHANNELS)
        self.conv1 = ConvBN(3, in_ch, 3, stride=2, act="hard_swish", **conv_kw)
        _scale_lr(self.conv1, lr_mult_list[0])
        # channels/stride of every selectable map, by feature index
        channels, strides = {}, {}
        stride = 2
        self.blocks: list[ResidualUnit] = []
        for i, (k, exp, out, se, act, s) in enumerate(blocks):
            mid_ch, out_ch = make_divisible(scale * exp), make_divisible(scale * out)
            block = ResidualUnit(in_ch, mid_ch, out_ch, k, s, se, act, **conv_kw)
            _scale_lr(block, lr_of(i))
            self.blocks.append(self.add_sublayer(f"conv{i + 2}", block))
            if with_extra_blocks:  # the expansion output, before this block's stride
                channels[i + 2], strides[i + 2] = mid_ch, stride
            else:
                channels[i + 2], strides[i + 2] = out_ch, stride * s
            stride *= s
            in_ch = out_ch

        self.extra_layers: list[nn.Layer] = []
        if with_extra_blocks:
            idx = num_blocks + 2
            out_ch = make_divisible(scale * last_channels * multiplier)
            layer = ConvBN(in_ch, out_ch, 1, act="hard_swish", **conv_kw)
            self.extra_layers.append(self.add_sublayer(f"conv{idx}", layer))
            channels[idx], strides[idx] = out_ch, stride
            for c0, c1 in extras:
                idx += 1
                stride *= 2
                layer = ExtraBlockDW(out_ch, c0, c1, **conv_kw)
                self.extra_layers.append(self.add_sublayer(f"conv{idx}", layer))
                channels[idx], strides[idx], out_ch = c1, stride, c1
            for layer in self.extra_layers:
                _scale_lr(layer, lr_mult_list[-1])

        self.out_channels = [channels[i] for i in self.feature_maps]
        self.out_strides = [strides[i] for i in self.feature_maps]

    @staticmethod
    def _apply_multiplier(blocks: tuple, multiplier: float) -> list[tuple]:
        """Scale the output channels of the last three blocks, and the expansion channels of the
        last two (the first of them keeps its input-sized expansion)."""
        blocks = [list(b) for b in blocks]
        if multiplier != 1.0:
            blocks[-3][2] = int(blocks[-3][2] * multiplier)
            for b in blocks[-2:]:
                b[1], b[2] = int(b[1] * multiplier), int(b[2] * multiplier)
        return [tuple(b) for b in blocks]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        # layers deeper than the last returned map are not run; plain zip loops (no break,
        # no early return, no enumerate start) so that dy2static translates them faithfully
        last = self.feature_maps[-1]
        x = self.conv1(image)
        outs = []
        for idx, block in zip(range(2, last + 1), self.blocks):
            x, expanded = block(x)
            if idx in self.feature_maps:
                outs.append(expanded if self.with_extra_blocks else x)
        first_extra = len(self.blocks) + 2
        for idx, layer in zip(range(first_extra, last + 1), self.extra_layers):
            x = layer(x)
            if idx in self.feature_maps:
                outs.append(x)
        return outs
