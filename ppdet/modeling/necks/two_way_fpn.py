"""Two-way FPN: the FPN top-down pathway followed by a bottom-up pathway (PANet's path
aggregation, Liu et al. 2018), seed 001's "TwoWayFPN".

With the FPN outputs P_0..P_{L-1} (shallowest first, stride doubling per level):

    N_0 = P_0
    N_l = fuse_convs[l-1]( downsample_convs[l-1](N_{l-1}) + P_l )      l = 1 .. L-1

``downsample_convs`` are 3x3 stride-2 convs and ``fuse_convs`` 3x3 convs, each followed by the
norm (``norm_type``) and a ReLU (none after an EvoNorm, which is its own activation). The
stride-2 conv maps H to ceil(H / 2), which is the size of the next level for every backbone
here (stride-2 convs and pools with 'same' padding); a map of another size is resized to P_l
(nearest), so any level sizes work.

Parameters: ``fpn.*`` (the inner ``FPN``, PaddleDetection 2.x names, e.g.
``fpn.fpn_inner_res5_sum.weight``), ``downsample_convs.{i}.conv/norm``,
``fuse_convs.{i}.conv/norm``. Without a norm the convs have a bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import ConvNorm
from ppdet.modeling.layers.norms import EPS, MOMENTUM, fit_num_groups
from ppdet.modeling.layers.resize import resize_to
from ppdet.modeling.necks.fpn import FPN

__all__ = ["TwoWayFPN"]

RETINA_SCALES = (0.125, 0.0625, 0.03125)  # C3-C5


@register("neck")
class TwoWayFPN(nn.Layer):
    """FPN top-down pathway, then a bottom-up pathway (see the module docstring).

    forward(feats): backbone maps, shallowest first, [B, in_channels[i], H_i, W_i] -> list of
    len(in_channels) + extra_stage maps [B, out_channel, H_j, W_j], shallowest first, strides
    ``out_strides``. Shapes: level j has the size of the FPN's level j; for an image of H x W
    and a backbone whose stride-s map is ceil(H/s) x ceil(W/s) (ResNet, EfficientNet), output j
    is ceil(H/s_j) x ceil(W/s_j): for 97 x 131 and strides 8..128, 13x17, 7x9, 4x5, 2x3, 1x2.

    Args:
        in_channels, out_channel, spatial_scales, has_extra_convs, extra_stage, use_c5,
        relu_before_extra_convs: of the inner ``FPN`` (defaults: RetinaNet's P3-P7 on C3-C5).
        norm_type: norm of the bottom-up convs (None: convs with bias, no norm).
        fpn_norm_type: norm of the inner FPN's convs (None: as PaddleDetection's FPN).
        norm_decay, freeze_norm: as in ``build_norm`` (both pathways).
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
        norm_type: str | None = None,
        fpn_norm_type: str | None = None,
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        norm_groups: int = 32,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
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
        num_out = len(self.fpn.out_channels)
        conv_kw = dict(
            act="relu",
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            num_groups=fit_num_groups(out_channel, norm_groups),
            norm_momentum=norm_momentum,
            norm_eps=norm_eps,
        )
        self.downsample_convs = nn.LayerList(
            [ConvNorm(out_channel, out_channel, 3, stride=2, **conv_kw) for _ in range(num_out - 1)]
        )
        self.fuse_convs = nn.LayerList(
            [ConvNorm(out_channel, out_channel, 3, **conv_kw) for _ in range(num_out - 1)]
        )
        self.in_channels = self.fpn.in_channels
        self.out_channels = list(self.fpn.out_channels)
        self.out_strides = list(self.fpn.out_strides)
        self.spatial_scales = list(self.fpn.spatial_scales)

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        pyramid = self.fpn(feats)  # P_0..P_{L-1}, each [B, out, H_l, W_l]
        outs = [pyramid[0]]
        for level in range(1, len(pyramid)):
            down = self.downsample_convs[level - 1](outs[-1])  # [B, out, ceil(H/2), ceil(W/2)]
            fused = resize_to(down, pyramid[level]) + pyramid[level]
            outs.append(self.fuse_convs[level - 1](fused))  # [B, out, H_l, W_l]
        return outs
