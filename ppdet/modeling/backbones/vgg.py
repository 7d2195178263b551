"""VGG backbone in its SSD form (Liu et al., "SSD: Single Shot MultiBox Detector", 2016).

Plain 3x3 convs with bias and ReLU, no norm layers:

    conv_block_0..4  VGG-16 (VGG-19) conv stages, 64, 128, 256, 512, 512 channels; blocks 0-3
                     end in a 2x2 stride-2 max-pool (rounding up: 75 -> 38), block 4 in a 3x3
                     stride-1 max-pool, so conv5_3 stays at stride 16.
    fc6              3x3 conv 512 -> 1024, dilation 6 (the subsampled fc6 of VGG).
    fc7              1x1 conv 1024 -> 1024.
    conv6..conv9     extra blocks: 1x1 conv (``conv0``, c0 channels) then k x k conv
                     (``conv1``, c1 channels) with the given stride and padding.

forward returns six maps: conv4_3 (block 3 before its pool), fc7, conv6, conv7, conv8, conv9.
Map i is L2-normalised over channels and multiplied by a learnable per-channel scale
(``norm{i}.scale``, initialised to ``normalizations[i]``) when ``normalizations[i]`` is not -1;
SSD uses 20 on conv4_3 only. At SSD's 300x300 input the maps have 38, 19, 10, 5, 3 and 1 cells.
Sublayer names equal PaddleDetection 2.x, so its ``.pdparams`` load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant

from ppdet.config.registry import register

__all__ = ["VGG"]

# depth -> number of 3x3 convs in each of the five blocks
VGG_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
FC_CHANNELS = 1024
FC6_DILATION = 6
NUM_OUTPUTS = 6
SSD_INPUT = 300  # the input size at which the strides of valid-padded extra blocks are given
L2_EPS = 1e-10


class ConvBlock(nn.Layer):
    """``num_convs`` 3x3 convs + ReLU (``conv0``, ``conv1``, ...), then a max-pool.

    forward(x [B, in, H, W]) -> (conv output [B, out, H, W], pooled [B, out, H', W']).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_convs: int,
        pool_k: int,
        pool_s: int,
        pool_pad: int,
    ):
        super().__init__()
        self.convs = []
        for i in range(num_convs):
            conv = nn.Conv2D(in_channels if i == 0 else out_channels, out_channels, 3, padding=1)
            self.convs.append(self.add_sublayer(f"conv{i}", conv))
        self.pool = nn.MaxPool2D(pool_k, stride=pool_s, padding=pool_pad, ceil_mode=True)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        for conv in self.convs:
            x = F.relu(conv(x))
        return x, self.pool(x)


class ExtraBlock(nn.Layer):
    """1x1 conv (``conv0``) + ReLU, then k x k conv (``conv1``) + ReLU.

    x: [B, in, H, W] -> [B, c1, (H + 2 * padding - k) // stride + 1, ...].
    """

    def __init__(self, in_channels: int, c0: int, c1: int, padding: int, stride: int, kernel: int):
        super().__init__()
        self.conv0 = nn.Conv2D(in_channels, c0, 1)
        self.conv1 = nn.Conv2D(c0, c1, kernel, stride=stride, padding=padding)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.relu(self.conv1(F.relu(self.conv0(x))))


class L2NormScale(nn.Layer):
    """x / ||x||_2 over channels, times a learnable per-channel ``scale`` [C].

    x: [B, C, H, W] -> [B, C, H, W].
    """

    def __init__(self, channels: int, init_scale: float):
        super().__init__()
        self.scale = self.create_parameter(
            [channels], attr=ParamAttr(initializer=Constant(init_scale))
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = F.normalize(x, axis=1, epsilon=L2_EPS)
        return x * self.scale.reshape([1, -1, 1, 1])  # [C] -> [1, C, 1, 1]


@register("backbone")
class VGG(nn.Layer):
    """SSD's VGG backbone (see the module docstring).

    forward(image [B, 3, H, W]) -> six maps [B, out_channels[i], h_i, w_i]; H must be at least
    257 for the default extra blocks (conv9 needs a 3x3 input).

    ``out_strides`` are 8, 16, then x stride per extra block; a block whose padding does not
    keep the map size (the valid 3x3 conv8/conv9) gets SSD_INPUT / its size at a 300x300 input,
    so the defaults give [8, 16, 32, 64, 100, 300], SSD-300's prior steps.

    Args:
        depth: 16 or 19.
        normalizations: one value per returned map; -1 means no L2Norm.
        extra_block_filters: (c0, c1, padding, stride, kernel) of each extra block; four of
            them make the six maps.
    """

    def __init__(
        self,
        depth: int = 16,
        normalizations: Sequence[float] = (20.0, -1, -1, -1, -1, -1),
        extra_block_filters: Sequence[Sequence[int]] = (
            (256, 512, 1, 2, 3),
            (128, 256, 1, 2, 3),
            (128, 256, 0, 1, 3),
            (128, 256, 0, 1, 3),
        ),
    ):
        super().__init__()
        if depth not in VGG_CONVS:
            raise ValueError(f"VGG depth {depth} is not supported (known: {sorted(VGG_CONVS)})")
        extras = [tuple(int(v) for v in f) for f in extra_block_filters]
        if any(len(f) != 5 for f in extras):
            raise ValueError(
                f"VGG extra_block_filters {list(extra_block_filters)} must be "
                "[c0, c1, padding, stride, kernel] lists"
            )
        num_outputs = 2 + len(extras)
        if len(normalizations) != num_outputs:
            raise ValueError(
                f"VGG normalizations {list(normalizations)} needs one value per returned map "
                f"({num_outputs}: conv4_3, fc7 and one per extra block)"
            )
        self.blocks = []
        in_ch = 3
        for i, (num_convs, out_ch) in enumerate(zip(VGG_CONVS[depth], BLOCK_CHANNELS)):
            pool = (3, 1, 1) if i == len(BLOCK_CHANNELS) - 1 else (2, 2, 0)
            block = ConvBlock(in_ch, out_ch, num_convs, *pool)
            self.blocks.append(self.add_sublayer(f"conv_block_{i}", block))
            in_ch = out_ch
        self.fc6 = nn.Conv2D(in_ch, FC_CHANNELS, 3, padding=FC6_DILATION, dilation=FC6_DILATION)
        self.fc7 = nn.Conv2D(FC_CHANNELS, FC_CHANNELS, 1)

        channels = [BLOCK_CHANNELS[3], FC_CHANNELS]
        strides = [8, 16]
        size = -(-SSD_INPUT // 16)  # fc7 cells at 300x300: 19
        self.extra_blocks = []
        in_ch = FC_CHANNELS
        for i, (c0, c1, padding, stride, kernel) in enumerate(extras):
            block = ExtraBlock(in_ch, c0, c1, padding, stride, kernel)
            self.extra_blocks.append(self.add_sublayer(f"conv{i + 6}", block))
            size = (size + 2 * padding - kernel) // stride + 1
            keeps_geometry = 2 * padding == kernel - 1
            strides.append(strides[-1] * stride if keeps_geometry else SSD_INPUT // max(size, 1))
            channels.append(c1)
            in_ch = c1

        self.norms = {}
        for i, value in enumerate(normalizations):
            if value != -1:
                self.norms[i] = self.add_sublayer(f"norm{i}", L2NormScale(channels[i], value))
        self.out_channels = channels
        self.out_strides = strides

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        x = image
        for i, block in enumerate(self.blocks):
            conv_out, x = block(x)
            if i == 3:
                conv4_3 = conv_out
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        outs = [conv4_3, x]
        for block in self.extra_blocks:
            x = block(x)
            outs.append(x)
        return [self.norms[i](o) if i in self.norms else o for i, o in enumerate(outs)]
