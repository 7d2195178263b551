"""SENet backbone (Hu et al., "Squeeze-and-Excitation Networks"): a ResNeXt whose every block
scales its residual branch by squeeze-excitation, with parameter names equal to
PaddleDetection 2.x.

SENet-154 = depth 152 (blocks 3, 8, 36, 3), variant d, groups 64, base_width 4, a stem of
128 channels (``conv1.conv1_1/_2/_3``: 3 -> 64 -> 64 -> 128) and in each block
``se.squeeze`` (Linear C -> C/16) and ``se.extract`` (Linear C/16 -> C), weights [in, out].
The blocks, stages and stem are those of resnet.py.

``se_pool`` picks how squeeze-excitation averages a map over H x W: ``"mean"`` (a vectorised
reduction, as PaddleDetection 2.x) or ``"fluid"`` (PaddleDetection v0.1: fluid 1.8's ``pool2d``
adds the H*W values one after another in float32, row-major, then divides by H*W). They differ
by float32 rounding only (~1e-5 relative on a 200 x 334 map), but SENet-154 amplifies it
through 50 SE blocks: with a genuine v0.1 tarball, "mean" gives 130/139 of v0.1's detections
and "fluid" 138/139 (bench/legacy_noise.py). On GPU the fluid sum is a ``cumsum``, whose
parallel scan adds in another order: the same formula, not the same rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F

from ppdet.config.registry import register
from ppdet.modeling.backbones.resnet import ResNet, SELayer

__all__ = ["FluidSELayer", "SENet"]

SENET_STEM_CHANNELS = 128
SE_POOLS = ("mean", "fluid")


def fluid_global_mean(x: paddle.Tensor) -> paddle.Tensor:
    """x [B, C, H, W] -> [B, C]: fluid 1.8 ``pool2d(global_pooling, avg)`` on CPU, rounding
    included: one float32 running sum over the H*W values in row-major order (``cumsum``'s last
    element), then a division by H*W."""
    b, c, h, w = x.shape
    total = paddle.cumsum(x.reshape([b, c, h * w]), axis=-1)[:, :, -1]  # [B, C]
    return paddle.divide(total, paddle.full([], h * w, total.dtype))


class FluidSELayer(SELayer):
    """Squeeze-excitation whose global average is fluid's sequential sum (``fluid_global_mean``);
    parameters as ``SELayer``. x: [B, C, H, W] -> [B, C, H, W]."""

    conventions = {"se_pool": "fluid"}

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        s = F.sigmoid(self.extract(F.relu(self.squeeze(fluid_global_mean(x)))))  # [B, C]
        return x * s.unsqueeze([2, 3])


@register("backbone")
class SENet(ResNet):
    """SENet / SE-ResNeXt backbone.

    forward(image [B, 3, H, W]) -> one map per ``return_idx``: stage i gives
    [B, C_i, H / 2**(i+2), W / 2**(i+2)], C_i = 256 * 2**i (64 * 2**i for depth 18/34).

    Args: as ``ResNet`` (depth 18..152, variant a/b/c/d/vd, ...), with squeeze-excitation in
    every block and a 128-channel stem; ``se_pool``: "mean" (2.x) or "fluid" (v0.1's sequential
    float32 sum, see the module docstring).
    """

    def __init__(
        self,
        depth: int = 152,
        variant: str = "d",
        lr_mult_list: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        groups: int = 64,
        base_width: int = 4,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = True,
        freeze_at: int = 0,
        return_idx: Sequence[int] = (0, 1, 2, 3),
        num_stages: int = 4,
        se_pool: str = "mean",
    ):
        if se_pool not in SE_POOLS:
            raise ValueError(f"SENet.se_pool: {se_pool!r} is not one of {', '.join(SE_POOLS)}")
        super().__init__(
            depth=depth,
            ch_in=SENET_STEM_CHANNELS,
            variant=variant,
            lr_mult_list=lr_mult_list,
            groups=groups,
            base_width=base_width,
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            freeze_at=freeze_at,
            return_idx=return_idx,
            num_stages=num_stages,
            std_senet=True,
        )
        if se_pool == "fluid":
            self._use_fluid_se()

    def _use_fluid_se(self) -> None:
        """Every block's ``se`` becomes a ``FluidSELayer`` of the same shape (same names)."""
        blocks = [
            b for _, b in self.named_sublayers() if isinstance(getattr(b, "se", None), SELayer)
        ]
        for block in blocks:
            channels, hidden = block.se.squeeze.weight.shape  # Linear weight [in, out]
            block.se = FluidSELayer(channels, channels // hidden)
