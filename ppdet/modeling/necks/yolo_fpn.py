"""YOLOv3 feature pyramid: detection blocks from the deepest level up, joined by 2x upsampling.

For level i (0 = deepest, stride 32), with c_i = base_channels / 2**i:

    x_i   = backbone map (i = 0), or concat([upsample2(transition_{i-1}(route_{i-1})),
            backbone map], channels)
    route_i, tip_i = yolo_block_i(x_i)           route: c_i channels, tip: 2 c_i channels
    transition_i: 1x1 conv c_i -> c_i / 2        (all but the last level)

The outputs are the tips, deepest first. Every conv is ConvNormLayer with leaky ReLU (0.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import ConvNormLayer

__all__ = ["YOLOv3FPN"]


class YoloDetBlockConvs(nn.Layer):
    """Alternating 1x1 / 3x3 convs: conv0 (in -> c), conv1 (c -> 2c), conv2 (2c -> c),
    conv3 (c -> 2c), route (2c -> c). x: [B, in, H, W] -> [B, c, H, W]."""

    def __init__(self, in_channels: int, channels: int, **norm_kw):
        super().__init__()
        self.conv0 = ConvNormLayer(in_channels, channels, 1, **norm_kw)
        self.conv1 = ConvNormLayer(channels, 2 * channels, 3, **norm_kw)
        self.conv2 = ConvNormLayer(2 * channels, channels, 1, **norm_kw)
        self.conv3 = ConvNormLayer(channels, 2 * channels, 3, **norm_kw)
        self.route = ConvNormLayer(2 * channels, channels, 1, **norm_kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(self.conv0(x))
        x = self.conv3(self.conv2(x))
        return self.route(x)


class YoloDetBlock(nn.Layer):
    """``conv_module`` then a 3x3 ``tip`` (c -> 2c).

    x: [B, in, H, W] -> (route [B, c, H, W], tip [B, 2c, H, W]).
    """

    def __init__(self, in_channels: int, channels: int, **norm_kw):
        super().__init__()
        self.conv_module = YoloDetBlockConvs(in_channels, channels, **norm_kw)
        self.tip = ConvNormLayer(channels, 2 * channels, 3, **norm_kw)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        route = self.conv_module(x)
        return route, self.tip(route)


@register("neck")
class YOLOv3FPN(nn.Layer):
    """YOLOv3 neck.

    forward(feats) with feats the backbone maps, shallowest first ([B, in_channels[k], H_k,
    W_k], each level half the size of the previous) -> tips deepest first,
    [B, out_channels[i], H_i, W_i], out_channels = [2 base, base, base / 2, ...].

    Args:
        in_channels: channels of the backbone maps, shallowest first.
        base_channels: route width c_0 of the deepest block, halved per level (512 in YOLOv3).
        norm_type, norm_decay, freeze_norm: as in ConvNormLayer.
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (256, 512, 1024),
        base_channels: int = 512,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
    ):
        super().__init__()
        self.in_channels = list(in_channels)
        self.num_levels = len(self.in_channels)
        if base_channels % 2 ** (self.num_levels - 1):
            raise ValueError(f"base_channels {base_channels} cannot be halved per level")
        norm_kw = dict(norm_type=norm_type, norm_decay=norm_decay, freeze_norm=freeze_norm)

        self.yolo_blocks: list[YoloDetBlock] = []
        self.transitions: list[ConvNormLayer] = []
        self.out_channels = []
        routed = 0  # channels arriving from the deeper level
        for i in range(self.num_levels):
            channels = base_channels // 2**i
            block_in = self.in_channels[-1 - i] + routed
            block = YoloDetBlock(block_in, channels, **norm_kw)
            self.yolo_blocks.append(self.add_sublayer(f"yolo_block.{i}", block))
            self.out_channels.append(2 * channels)
            if i < self.num_levels - 1:
                routed = channels // 2
                transition = ConvNormLayer(channels, routed, 1, **norm_kw)
                self.transitions.append(self.add_sublayer(f"yolo_transition.{i}", transition))

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        if len(feats) != self.num_levels:
            raise ValueError(f"YOLOv3FPN expects {self.num_levels} maps, got {len(feats)}")
        tips = []
        route = None
        for i, feat in enumerate(reversed(feats)):
            x = feat if route is None else paddle.concat([route, feat], axis=1)  # [B, C+c/2, H, W]
            route, tip = self.yolo_blocks[i](x)
            tips.append(tip)
            if i < self.num_levels - 1:
                route = F.interpolate(self.transitions[i](route), scale_factor=2, mode="nearest")
        return tips
