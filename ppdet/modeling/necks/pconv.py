"""Pyramid convolution (PConv) after an FPN: Wang et al. 2020, "Scale-Equalizing Pyramid
Convolution for Object Detection" (SEPC), without its deformable kernels (the "SEPC-lite"
form); seed 001's "PConv" neck.

One PConv module maps the pyramid x_0..x_{L-1} (shallowest first, equal channels) to

    y_l = conv_same(x_l) + conv_down(x_{l-1}) + up(conv_up(x_{l+1}))

three 3x3 kernels shared by all levels: ``conv_down`` has stride 2 (the finer neighbour),
``up`` is bilinear resizing to x_l's size (align_corners, as SEPC); the terms of missing
neighbours are left out at the ends. Then the norm and a ReLU (no ReLU after an EvoNorm, which
is its own activation). With ``integrated_norm`` (SEPC's integrated BN, "iBN") the norm's
statistics are taken over all levels at once (the levels are flattened and concatenated along
the width), otherwise the one norm layer is applied level by level. ``PConvFPN`` stacks
``num_stacks`` modules (SEPC uses 4) on top of an ``FPN``.

Parameters: ``fpn.*`` (PaddleDetection 2.x FPN names), ``pconvs.{k}.conv_same/conv_down/
conv_up.weight`` (+ ``.bias`` without a norm), ``pconvs.{k}.norm.*``.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import activate
from ppdet.modeling.layers.norms import EPS, MOMENTUM, build_norm, fit_num_groups
from ppdet.modeling.layers.resize import resize_to
from ppdet.modeling.necks.fpn import FPN

__all__ = ["PConvFPN", "PConvModule"]

RETINA_SCALES = (0.125, 0.0625, 0.03125)  # C3-C5


def _conv3x3(channels: int, stride: int, bias: bool) -> nn.Conv2D:
    """3x3 conv, padding 1 (H -> ceil(H / stride)), Normal(0, 0.01) weight, zero bias."""
    return nn.Conv2D(
        channels,
        channels,
        3,
        stride=stride,
        padding=1,
        weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
        bias_attr=ParamAttr(initializer=Constant(0.0)) if bias else False,
    )


def _integrated(norm: nn.Layer, maps: list[paddle.Tensor]) -> list[paddle.Tensor]:
    """Apply ``norm`` once to all maps: [B, C, H_l, W_l] each -> flattened [B, C, 1, sum H_l W_l]
    (statistics over every level together) -> split back to the input shapes."""
    flat = [m.reshape([0, 0, 1, -1]) for m in maps]  # [B, C, 1, H_l * W_l]
    joined = norm(paddle.concat(flat, axis=3))  # [B, C, 1, sum H_l W_l]
    outs, start = [], 0
    for m, f in zip(maps, flat):
        end = start + paddle.shape(f)[3]
        part = paddle.slice(joined, axes=[3], starts=[start], ends=[end])
        outs.append(part.reshape(paddle.shape(m)))  # [B, C, H_l, W_l]
        start = end
    return outs


class PConvModule(nn.Layer):
    """One pyramid convolution over all levels (see the module docstring).

    forward(maps): list of L >= 1 maps [B, channels, H_l, W_l] with H_{l+1} = ceil(H_l / 2)
    (other sizes are resized to fit) -> list of L maps of the same shapes.
    """

    def __init__(
        self,
        channels: int,
        norm_type: str | None = None,
        integrated_norm: bool = True,
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        num_groups: int = 32,
        momentum: float = MOMENTUM,
        eps: float = EPS,
    ):
        super().__init__()
        bias = norm_type is None
        self.conv_same = _conv3x3(channels, 1, bias)
        self.conv_down = _conv3x3(channels, 2, bias)
        self.conv_up = _conv3x3(channels, 1, bias)
        self.integrated_norm = integrated_norm
        self.norm = None
        self.act: str | None = "relu"
        if norm_type is not None:
            groups = fit_num_groups(channels, num_groups)
            self.norm = build_norm(
                channels, norm_type, norm_decay, freeze_norm, groups, eps=eps, momentum=momentum
            )
            if getattr(self.norm, "fuses_activation", False):
                self.act = None

    def forward(self, maps: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        outs = []
        for level, x in enumerate(maps):
            y = self.conv_same(x)  # [B, C, H_l, W_l]
            if level > 0:
                y = y + resize_to(self.conv_down(maps[level - 1]), y)
            if level < len(maps) - 1:
                up = self.conv_up(maps[level + 1])  # [B, C, H_{l+1}, W_{l+1}]
                y = y + resize_to(up, y, mode="bilinear", align_corners=True)
            outs.append(y)
        if self.norm is not None:
            if self.integrated_norm:
                outs = _integrated(self.norm, outs)
            else:
                outs = [self.norm(y) for y in outs]
        return [activate(y, self.act) for y in outs]


@register("neck")
class PConvFPN(nn.Layer):
    """An ``FPN`` followed by ``num_stacks`` pyramid convolutions (see the module docstring).

    forward(feats): backbone maps, shallowest first, [B, in_channels[i], H_i, W_i] -> list of
    len(in_channels) + extra_stage maps [B, out_channel, H_j, W_j] of the FPN's sizes: for an
    image of H x W and a backbone whose stride-s map is ceil(H/s) x ceil(W/s), output j is
    ceil(H/s_j) x ceil(W/s_j) (97 x 131, strides 8..128: 13x17, 7x9, 4x5, 2x3, 1x2).

    Args:
        in_channels, out_channel, spatial_scales, has_extra_convs, extra_stage, use_c5,
        relu_before_extra_convs: of the inner ``FPN`` (defaults: RetinaNet's P3-P7 on C3-C5).
        num_stacks: PConv modules after the FPN (>= 1).
        norm_type: norm of the PConv modules (None: convs with bias and no norm, SEPC's default).
        integrated_norm: statistics of that norm over all levels together (SEPC's iBN).
        fpn_norm_type: norm of the inner FPN's convs (None: as PaddleDetection's FPN).
        norm_decay, freeze_norm: as in ``build_norm``.
        norm_groups: "gn" / "evonorm_s0" groups, lowered to a divisor of out_channel.
        norm_momentum, norm_eps: running-statistics momentum (Paddle's convention) and epsilon
            of every norm, the inner FPN's included (Paddle's 0.9 / 1e-5 by default).

    Attributes: out_channels, out_strides, spatial_scales of the outputs (as ``FPN``).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channel: int = 256,
        spatial_scales: Sequence[float] = RETINA_SCALES,
        has_extra_convs: bool = True,
        extra_stage: int = 2,
        use_c5: bool = False,
        relu_before_extra_convs: bool = True,
        num_stacks: int = 4,
        norm_type: str | None = None,
        integrated_norm: bool = True,
        fpn_norm_type: str | None = None,
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        norm_groups: int = 32,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"PConvFPN: num_stacks must be >= 1, got {num_stacks}")
        self.fpn = FPN(
            in_channels,
            out_channel,
            spatial_scales,
            has_extra_convs=has_extra_convs,
            extra_stage=extra_stage,
            use_c5=use_c5,
            norm_type=fpn_norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            relu_before_extra_convs=relu_before_extra_convs,
            norm_groups=norm_groups,
            norm_momentum=norm_momentum,
            norm_eps=norm_eps,
        )
        self.pconvs = nn.LayerList(
            [
                PConvModule(
                    out_channel,
                    norm_type,
                    integrated_norm,
                    norm_decay,
                    freeze_norm,
                    norm_groups,
                    momentum=norm_momentum,
                    eps=norm_eps,
                )
                for _ in range(num_stacks)
            ]
        )
        self.in_channels = self.fpn.in_channels
        self.out_channels = list(self.fpn.out_channels)
        self.out_strides = list(self.fpn.out_strides)
        self.spatial_scales = list(self.fpn.spatial_scales)

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        maps = self.fpn(feats)
        for pconv in self.pconvs:
            maps = pconv(maps)
        return maps
