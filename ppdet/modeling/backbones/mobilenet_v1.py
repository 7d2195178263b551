"""MobileNetV1 backbone (Howard et al., "MobileNets", 2017).

A 3x3 stride-2 stem ``conv1`` followed by 13 depthwise-separable blocks (3x3 depthwise conv,
then 1x1 pointwise conv, each with BN and ReLU). Layers are numbered 0 (the stem) to 13:

    idx  name     out channels  stride        idx  name     out channels  stride
    0    conv1     32            2            7    conv5_1   512           16
    1    conv2_1   64            2            ...  ...       512           16
    2    conv2_2  128            4            11   conv5_5   512           16
    3    conv3_1  128            4            12   conv5_6  1024           32
    4    conv3_2  256            8            13   conv6    1024           32
    5    conv4_1  256            8
    6    conv4_2  512           16

Every channel count is multiplied by ``scale`` (and truncated to int). ``feature_maps`` picks
the returned layers: the YOLOv3 default [4, 6, 13] gives 256, 512, 1024 channels at strides
8, 16, 32.

With ``with_extra_blocks`` (SSD), layers 14.. are the extra blocks ``conv7_1`` .. ``conv7_4``:
each is a 1x1 conv (``pointwise_conv``, to c0 channels) then a 3x3 stride-2 conv
(``normal_conv``, to c1), both BN + ReLU6 (``extra_block_act``; PaddleDetection v0.1's
conv7_* blocks use ReLU), with (c0, c1) from ``extra_block_filters`` (not scaled). SSD-MobileNetV1 300 returns [11, 13, 14, 15, 16, 17]: 512, 1024, 512, 256, 256, 128
channels on 19, 10, 5, 3, 2, 1 cells. Sublayer names equal PaddleDetection 2.x.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import MobileConvNormLayer

__all__ = ["MobileNet"]

# (name, depthwise channels, pointwise out channels, stride) before scaling, for layers 1..13
SEPARABLE_BLOCKS = (
    ("conv2_1", 32, 64, 1),
    ("conv2_2", 64, 128, 2),
    ("conv3_1", 128, 128, 1),
    ("conv3_2", 128, 256, 2),
    ("conv4_1", 256, 256, 1),
    ("conv4_2", 256, 512, 2),
    ("conv5_1", 512, 512, 1),
    ("conv5_2", 512, 512, 1),
    ("conv5_3", 512, 512, 1),
    ("conv5_4", 512, 512, 1),
    ("conv5_5", 512, 512, 1),
    ("conv5_6", 512, 1024, 2),
    ("conv6", 1024, 1024, 1),
)
STEM_CHANNELS = 32


class ExtraBlock(nn.Layer):
    """SSD extra block: 1x1 conv (``pointwise_conv``) then 3x3 stride-2 conv (``normal_conv``).

    x: [B, in_channels, H, W] -> [B, c1, ceil(H / 2), ceil(W / 2)].
    """

    def __init__(self, in_channels: int, c0: int, c1: int, act: str = "relu6", **conv_kw):
        super().__init__()
        self.pointwise_conv = MobileConvNormLayer(in_channels, c0, 1, act=act, **conv_kw)
        self.normal_conv = MobileConvNormLayer(c0, c1, 3, stride=2, act=act, **conv_kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.normal_conv(self.pointwise_conv(x))


class DepthwiseSeparable(nn.Layer):
    """3x3 depthwise conv (``_depthwise_conv``) then 1x1 conv (``_pointwise_conv``).

    x: [B, in_channels, H, W] -> [B, out_channels, H / stride, W / stride].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, **conv_kw):
        super().__init__()
        self._depthwise_conv = MobileConvNormLayer(
            in_channels, in_channels, 3, stride=stride, groups=in_channels, **conv_kw
        )
        self._pointwise_conv = MobileConvNormLayer(in_channels, out_channels, 1, **conv_kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self._pointwise_conv(self._depthwise_conv(x))


@register("backbone")
class MobileNet(nn.Layer):
    """MobileNetV1 backbone.

    forward(image [B, 3, H, W]) -> one map per ``feature_maps`` index (see the module table),
    [B, out_channels[k], H / out_strides[k], W / out_strides[k]].

    Args:
        scale: width multiplier applied to every layer.
        feature_maps: layer indices (0..13, and 14.. with extra blocks) to return, in
            increasing order.
        conv_decay: L2 decay on the conv weights (0 keeps them out of the global decay).
        conv_learning_rate: learning-rate multiplier of every conv weight (SSD uses 0.1).
        norm_type: "bn".
        norm_decay: L2 decay on the norm's scale and shift.
        with_extra_blocks: build SSD's extra blocks after conv6 (layers 14, 15, ...).
        extra_block_filters: (c0, c1) channels of each extra block.
        extra_block_act: activation of the extra blocks' convs: "relu6" (2.x) or "relu"
            (v0.1; declared as the ``extra_block_act`` convention, ``ppdet.modeling.conventions``).
    """

    def __init__(
        self,
        scale: float = 1.0,
        feature_maps: Sequence[int] = (4, 6, 13),
        conv_decay: float = 0.0,
        conv_learning_rate: float = 1.0,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        with_extra_blocks: bool = False,
        extra_block_filters: Sequence[Sequence[int]] = (
            (256, 512),
            (128, 256),
            (128, 256),
            (64, 128),
        ),
        extra_block_act: str = "relu6",
    ):
        super().__init__()
        if extra_block_act not in ("relu6", "relu"):
            raise ValueError(
                f"MobileNet extra_block_act must be 'relu6' (2.x) or 'relu' (v0.1), "
                f"got {extra_block_act!r}"
            )
        extras = [tuple(f) for f in extra_block_filters] if with_extra_blocks else []
        if any(len(f) != 2 for f in extras):
            raise ValueError(
                f"MobileNet extra_block_filters {list(extra_block_filters)} must be [c0, c1] pairs"
            )
        self.feature_maps = sorted(feature_maps)
        num_layers = len(SEPARABLE_BLOCKS) + 1 + len(extras)
        if not self.feature_maps or not set(self.feature_maps) <= set(range(num_layers)):
            raise ValueError(
                f"MobileNet feature_maps {list(feature_maps)} must be within 0..{num_layers - 1}"
                f" (with_extra_blocks={with_extra_blocks})"
            )
        conv_kw = dict(norm_type=norm_type, norm_decay=norm_decay, conv_decay=conv_decay)

        channels = [int(STEM_CHANNELS * scale)]  # output channels of layer idx
        strides = [2]
        self.conv1 = MobileConvNormLayer(3, channels[0], 3, stride=2, **conv_kw)
        self.blocks: list[nn.Layer] = []  # DepthwiseSeparable, then ExtraBlock
        for name, dw_channels, pw_channels, stride in SEPARABLE_BLOCKS:
            block = DepthwiseSeparable(
                int(dw_channels * scale), int(pw_channels * scale), stride, **conv_kw
            )
            self.blocks.append(self.add_sublayer(name, block))
            channels.append(int(pw_channels * scale))
            strides.append(strides[-1] * stride)
        for i, (c0, c1) in enumerate(extras, start=1):
            block = ExtraBlock(channels[-1], c0, c1, extra_block_act, **conv_kw)
            self.blocks.append(self.add_sublayer(f"conv7_{i}", block))
            channels.append(c1)
            strides.append(strides[-1] * 2)
        if conv_learning_rate != 1.0:
            for name, param in self.named_parameters():
                if name.endswith("_conv.weight"):
                    lr = param.optimize_attr["learning_rate"]
                    param.optimize_attr["learning_rate"] = lr * conv_learning_rate

        self.out_channels = [channels[i] for i in self.feature_maps]
        self.out_strides = [strides[i] for i in self.feature_maps]
        self.conventions = {"extra_block_act": extra_block_act} if extras else {}

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        x = self.conv1(image)
        outs = [x] if 0 in self.feature_maps else []
        # deeper layers than the last returned map are not run (a plain zip loop: dy2static
        # mistranslates break and enumerate's start)
        for idx, block in zip(range(1, self.feature_maps[-1] + 1), self.blocks):
            x = block(x)
            if idx in self.feature_maps:
                outs.append(x)
        return outs
