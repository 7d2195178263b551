"""BiFPN (Tan et al. 2020, "EfficientDet"): weighted bidirectional feature pyramid with fast
normalised fusion and depthwise-separable convolutions.

Inputs C_0..C_{n-1} (shallowest first) become the levels P_0..P_{L-1}, L = n +
num_extra_levels: P_i = lateral_convs[i](C_i) (1x1 conv + norm); the first extra level is
max_pool(extra_convs[0](C_{n-1})) (1x1 conv + norm, then 3x3 stride-2 max pooling, as
EfficientDet resamples P6 from C5), every further one max_pool of the previous. Each of the
``num_stacks`` cells then computes, with w = relu(weights) / (sum relu(weights) + eps):

    top-down   T_{L-1} = P_{L-1};  T_l = conv_up(w0 P_l + w1 up(T_{l+1}))
    bottom-up  O_0 = T_0;          O_l = conv_down(w0 T_l + w1 down(O_{l-1}) + w2 P_l)
               O_{L-1} = conv_down(w0 P_{L-1} + w1 down(O_{L-2}))

``up`` is nearest resizing to the finer size, ``down`` a 3x3 stride-2 max pool (padding 1:
H -> ceil(H / 2)), resized when a backbone's sizes differ. A conv is act -> depthwise 3x3
(no bias) -> pointwise 1x1 (bias) -> norm, the activation (swish) before the convolution as in
EfficientDet. ``use_weighted_fusion`` false sums the inputs instead.

Parameter names follow PaddleDetection 2.x's ``necks/bifpn.py`` (``lateral_convs.{i}.conv/norm``,
``extra_convs.0.conv/norm``, ``bifpn_cells.{k}.conv_up/conv_down.{j}.depthwise_conv/
pointwise_conv/norm``, ``bifpn_cells.{k}.up_weights`` [L-1, 2], ``down_weights`` [L-1, 3]);
2.x's first extra level is a 3x3 stride-2 conv where this one follows the paper (1x1 conv +
pooling), so ``extra_convs.0.conv.weight`` is [C, C5, 1, 1] (no 2.x config uses BiFPN, so no
published weights depend on it).
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import ACTIVATIONS, ConvNorm, activate
from ppdet.modeling.layers.norms import build_norm, fit_num_groups
from ppdet.modeling.layers.resize import resize_to

BN_MOMENTUM = 0.997  # PaddleDetection 0.5's BiFPN norms (Paddle convention: running weight)
BN_EPS = 1e-4

__all__ = ["BiFPN", "BiFPNCell", "SeparableConvLayer"]

RETINA_SCALES = (0.125, 0.0625, 0.03125)  # C3-C5


def _downsample(x: paddle.Tensor) -> paddle.Tensor:
    """3x3 stride-2 max pool, padding 1: [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]."""
    return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class SeparableConvLayer(nn.Layer):
    """act -> depthwise 3x3 (no bias) -> pointwise 1x1 (bias) -> norm; [B, C, H, W] kept.

    norm_type None: no norm. An EvoNorm here is its linear variant (no activation follows the
    norm: the next node applies ``act`` before its convolution).
    """

    def __init__(
        self,
        channels: int,
        norm_type: str | None = "bn",
        act: str | None = "swish",
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        num_groups: int = 32,
        norm_momentum: float = BN_MOMENTUM,
        norm_eps: float = BN_EPS,
    ):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"BiFPN: unknown activation {act!r} (known: {ACTIVATIONS})")
        self.act = act
        self.depthwise_conv = nn.Conv2D(
            channels, channels, 3, padding=1, groups=channels, bias_attr=False
        )
        self.pointwise_conv = nn.Conv2D(channels, channels, 1)
        self.norm = None
        if norm_type is not None:
            groups = fit_num_groups(channels, num_groups)
            self.norm = build_norm(
                channels,
                norm_type,
                norm_decay,
                freeze_norm,
                groups,
                nonlinear=False,
                eps=norm_eps,
                momentum=norm_momentum,
            )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.pointwise_conv(self.depthwise_conv(activate(x, self.act)))
        return y if self.norm is None else self.norm(y)


class BiFPNCell(nn.Layer):
    """One top-down + bottom-up pass over L levels of ``channels`` (see the module docstring).

    forward(feats): L maps [B, C, H_l, W_l], shallowest first -> L maps of the same shapes.
    """

    def __init__(
        self,
        channels: int,
        num_levels: int,
        use_weighted_fusion: bool = True,
        eps: float = 1e-4,
        **conv_kw,
    ):
        super().__init__()
        self.num_levels = num_levels
        self.use_weighted_fusion = use_weighted_fusion
        self.eps = eps
        self.conv_up = nn.LayerList(
            [SeparableConvLayer(channels, **conv_kw) for _ in range(num_levels - 1)]
        )
        self.conv_down = nn.LayerList(
            [SeparableConvLayer(channels, **conv_kw) for _ in range(num_levels - 1)]
        )
        if use_weighted_fusion:
            ones = ParamAttr(initializer=Constant(1.0))
            self.up_weights = self.create_parameter([num_levels - 1, 2], attr=ones)
            self.down_weights = self.create_parameter([num_levels - 1, 3], attr=ones)

    def _fuse(self, inputs: list[paddle.Tensor], weights: paddle.Tensor | None) -> paddle.Tensor:
        """Fast normalised fusion: sum_i w_i x_i / (sum_i w_i + eps), w = relu(weights)."""
        if weights is None:
            return paddle.add_n(inputs)
        w = F.relu(weights)
        w = w / (w.sum() + self.eps)
        return paddle.add_n([w[i] * x for i, x in enumerate(inputs)])

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        if len(feats) != self.num_levels:
            raise ValueError(f"BiFPNCell expects {self.num_levels} maps, got {len(feats)}")
        top = self.num_levels - 1
        td = [None] * self.num_levels  # top-down nodes
        td[top] = feats[top]
        for i, level in enumerate(range(top - 1, -1, -1)):
            up = resize_to(td[level + 1], feats[level])  # nearest, to [B, C, H_l, W_l]
            w = self.up_weights[i] if self.use_weighted_fusion else None
            td[level] = self.conv_up[i](self._fuse([feats[level], up], w))
        outs = [td[0]]
        for i, level in enumerate(range(1, self.num_levels)):
            down = resize_to(_downsample(outs[-1]), feats[level])  # [B, C, H_l, W_l]
            if level == top:
                w = self.down_weights[i][:2] if self.use_weighted_fusion else None
                fused = self._fuse([feats[level], down], w)
            else:
                w = self.down_weights[i] if self.use_weighted_fusion else None
                fused = self._fuse([td[level], down, feats[level]], w)
            outs.append(self.conv_down[i](fused))
        return outs


@register("neck")
class BiFPN(nn.Layer):
    """Bidirectional FPN with fast normalised fusion (see the module docstring).

    forward(feats): backbone maps, shallowest first, [B, in_channels[i], H_i, W_i] -> list of
    len(in_channels) + num_extra_levels maps [B, out_channel, H_j, W_j], shallowest first.
    Shapes: inputs keep their sizes; each extra level is ceil(previous / 2). For an image of
    H x W and a backbone whose stride-s map is ceil(H/s) x ceil(W/s) (EfficientNet, ResNet),
    output j is ceil(H/s_j) x ceil(W/s_j): 97 x 131 at strides 8..128 gives 13x17, 7x9, 4x5,
    2x3, 1x2.

    Args:
        in_channels: channels of the input maps (the backbone's out_channels).
        out_channel: channels of every level (EfficientDet-D0: 64, D1: 88).
        spatial_scales: 1 / stride of each input map, halving from one to the next.
        num_extra_levels: levels added below the deepest input (EfficientDet: 2, P6 and P7).
        num_stacks: BiFPN cells (EfficientDet-D0: 3).
        use_weighted_fusion: fast normalised fusion weights (false: plain sums).
        norm_type: norm of every conv (None: convs with bias only); norm_decay, freeze_norm as
            in ``build_norm``; norm_groups: "gn" / "evonorm_s0" groups, lowered to a divisor of
            out_channel (64 -> 32, 88 -> 22).
        norm_momentum, norm_eps: running-statistics momentum (Paddle's convention) and epsilon
            of those norms: 0.997 / 1e-4 as PaddleDetection 0.5's BiFPN.
        act: activation before each separable conv: "swish" (EfficientDet), "relu" or None.
        eps: the fusion's epsilon (EfficientDet: 1e-4).

    Attributes: out_channels, out_strides, spatial_scales of the outputs.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channel: int = 256,
        spatial_scales: Sequence[float] = RETINA_SCALES,
        num_extra_levels: int = 2,
        num_stacks: int = 1,
        use_weighted_fusion: bool = True,
        norm_type: str | None = "bn",
        norm_groups: int = 32,
        act: str | None = "swish",
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        eps: float = 1e-4,
        norm_momentum: float = BN_MOMENTUM,
        norm_eps: float = BN_EPS,
    ):
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        spatial_scales = [float(s) for s in spatial_scales]
        if not in_channels or len(spatial_scales) != len(in_channels):
            raise ValueError(
                f"BiFPN: give one spatial scale per input map: in_channels {in_channels}, "
                f"spatial_scales {spatial_scales}"
            )
        if any(abs(b * 2 - a) > 1e-9 * a for a, b in zip(spatial_scales, spatial_scales[1:])):
            raise ValueError(f"BiFPN: spatial_scales {spatial_scales} must halve per level")
        if num_stacks < 1 or num_extra_levels < 0:
            raise ValueError(
                f"BiFPN: num_stacks must be >= 1 and num_extra_levels >= 0, got {num_stacks}, "
                f"{num_extra_levels}"
            )
        num_levels = len(in_channels) + num_extra_levels
        if num_levels < 2:
            raise ValueError("BiFPN: needs at least 2 levels (inputs plus extra levels)")
        self.in_channels = in_channels
        norm_kw = dict(
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            num_groups=fit_num_groups(out_channel, norm_groups),
            norm_momentum=norm_momentum,
            norm_eps=norm_eps,
        )
        self.lateral_convs = nn.LayerList(
            [ConvNorm(c, out_channel, 1, **norm_kw) for c in in_channels]
        )
        self.num_extra_levels = num_extra_levels
        self.extra_convs = nn.LayerList(  # the 1x1 resampling of the first extra level
            [ConvNorm(in_channels[-1], out_channel, 1, **norm_kw)] if num_extra_levels else []
        )
        self.bifpn_cells = nn.LayerList(
            [
                BiFPNCell(out_channel, num_levels, use_weighted_fusion, eps, act=act, **norm_kw)
                for _ in range(num_stacks)
            ]
        )
        scales = spatial_scales + [
            spatial_scales[-1] / 2**j for j in range(1, num_extra_levels + 1)
        ]
        self.spatial_scales = scales
        self.out_strides = [int(round(1.0 / s)) for s in scales]
        self.out_channels = [out_channel] * num_levels

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        if len(feats) != len(self.in_channels):
            raise ValueError(
                f"BiFPN expects {len(self.in_channels)} maps (in_channels {self.in_channels}), "
                f"got {len(feats)}"
            )
        levels = [conv(x) for conv, x in zip(self.lateral_convs, feats)]  # [B, C, H_i, W_i]
        if self.num_extra_levels:
            levels.append(_downsample(self.extra_convs[0](feats[-1])))  # ceil(H_n / 2)
            for _ in range(self.num_extra_levels - 1):
                levels.append(_downsample(levels[-1]))
        for cell in self.bifpn_cells:
            levels = cell(levels)
        return levels
