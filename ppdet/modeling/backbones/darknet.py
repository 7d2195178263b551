"""DarkNet-53, the YOLOv3 backbone (Redmon & Farhadi, "YOLOv3: An Incremental Improvement").

Layout (depth 53), channels for an input of 3 channels:

    conv0        3x3  3 -> 32,   stride 1
    downsample0  3x3 32 -> 64,   stride 2
    stage i (i = 0..4): n_i residual blocks on 2*c_i channels, c = 32, 64, 128, 256, 512,
                 n = 1, 2, 8, 8, 4; each block is 1x1 (2c -> c) then 3x3 (c -> 2c) plus input.
    stage.i.downsample (i < 4): 3x3 stride 2, 2c_i -> 4c_i.

Stage i works at stride 2**(i+1) with 64 * 2**i channels. Sublayer names (with their dots)
equal PaddleDetection 2.x, so its ``.pdparams`` load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import ConvNormLayer

__all__ = ["DarkNet"]

# depth -> number of residual blocks in each stage
DARKNET_STAGES = {53: (1, 2, 8, 8, 4)}


class BasicBlock(nn.Layer):
    """Residual block: 1x1 (2c -> c) then 3x3 (c -> 2c), added to the input.

    x: [B, 2c, H, W] -> [B, 2c, H, W].
    """

    def __init__(self, channels: int, norm_type: str, norm_decay: float, freeze_norm: bool):
        super().__init__()
        kw = dict(norm_type=norm_type, norm_decay=norm_decay, freeze_norm=freeze_norm)
        self.conv1 = ConvNormLayer(2 * channels, channels, 1, **kw)
        self.conv2 = ConvNormLayer(channels, 2 * channels, 3, **kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv2(self.conv1(x))


class DownSample(nn.Layer):
    """3x3 stride-2 ConvNormLayer under the name ``conv_bn_layer``: [B, C, H, W] ->
    [B, out, H/2, W/2]."""

    def __init__(self, in_channels: int, out_channels: int, **norm_kw):
        super().__init__()
        self.conv_bn_layer = ConvNormLayer(in_channels, out_channels, 3, stride=2, **norm_kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv_bn_layer(x)


class Stage(nn.Layer):
    """``count`` residual blocks named ``basicblock0``, ``stage.{i}.1``, ``stage.{i}.2``, ..."""

    def __init__(self, index: int, channels: int, count: int, **norm_kw):
        super().__init__()
        self.blocks: list[BasicBlock] = []
        for j in range(count):
            name = "basicblock0" if j == 0 else f"stage.{index}.{j}"
            self.blocks.append(self.add_sublayer(name, BasicBlock(channels, **norm_kw)))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@register("backbone")
class DarkNet(nn.Layer):
    """DarkNet backbone.

    forward(image [B, 3, H, W]) -> one map per ``return_idx``: stage i gives
    [B, 64 * 2**i, H / 2**(i+1), W / 2**(i+1)]; the default [2, 3, 4] gives 256, 512, 1024
    channels at strides 8, 16, 32.

    Args:
        depth: only 53.
        return_idx: stages (0..4) whose outputs are returned, in increasing order.
        freeze_at: stages 0..freeze_at (with the stem) get no gradient; -1 freezes nothing.
        norm_type: "bn".
        norm_decay: L2 decay on the norm's scale and shift.
        freeze_norm: zero learning rate on every norm's scale and shift.
    """

    def __init__(
        self,
        depth: int = 53,
        return_idx: Sequence[int] = (2, 3, 4),
        freeze_at: int = -1,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
    ):
        super().__init__()
        if depth not in DARKNET_STAGES:
            raise ValueError(f"DarkNet depth {depth} is not supported (known: 53)")
        counts = DARKNET_STAGES[depth]
        self.return_idx = sorted(return_idx)
        if not self.return_idx or not set(self.return_idx) <= set(range(len(counts))):
            raise ValueError(f"return_idx {list(return_idx)} must be within 0..{len(counts) - 1}")
        self.freeze_at = freeze_at
        norm_kw = dict(norm_type=norm_type, norm_decay=norm_decay, freeze_norm=freeze_norm)

        self.conv0 = ConvNormLayer(3, 32, 3, **norm_kw)
        self.downsample0 = DownSample(32, 64, **norm_kw)
        self.stages: list[Stage] = []
        self.downsamples: list[DownSample] = []
        for i, count in enumerate(counts):
            channels = 32 * 2**i  # bottleneck width c; the stage carries 2c
            stage = Stage(i, channels, count, **norm_kw)
            self.stages.append(self.add_sublayer(f"stage.{i}", stage))
            if i < len(counts) - 1:
                down = DownSample(2 * channels, 4 * channels, **norm_kw)
                self.downsamples.append(self.add_sublayer(f"stage.{i}.downsample", down))

        self.out_channels = [64 * 2**i for i in self.return_idx]
        self.out_strides = [2 ** (i + 1) for i in self.return_idx]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        x = self.downsample0(self.conv0(image))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i <= self.freeze_at:
                x.stop_gradient = True
            if i in self.return_idx:
                outs.append(x)
            if i == self.return_idx[-1]:
                break  # deeper stages are not needed
            x = self.downsamples[i](x)
        return outs
