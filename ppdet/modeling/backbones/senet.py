"""SENet backbone (Hu et al., "Squeeze-and-Excitation Networks"): a ResNeXt whose every block
scales its residual branch by squeeze-excitation, with parameter names equal to
PaddleDetection 2.x.

SENet-154 = depth 152 (blocks 3, 8, 36, 3), variant d, groups 64, base_width 4, a stem of
128 channels (``conv1.conv1_1/_2/_3``: 3 -> 64 -> 64 -> 128) and in each block
``se.squeeze`` (Linear C -> C/16) and ``se.extract`` (Linear C/16 -> C), weights [in, out].
The blocks, stages and stem are those of resnet.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from ppdet.config.registry import register
from ppdet.modeling.backbones.resnet import ResNet

__all__ = ["SENet"]

SENET_STEM_CHANNELS = 128


@register("backbone")
class SENet(ResNet):
    """SENet / SE-ResNeXt backbone.

    forward(image [B, 3, H, W]) -> one map per ``return_idx``: stage i gives
    [B, C_i, H / 2**(i+2), W / 2**(i+2)], C_i = 256 * 2**i (64 * 2**i for depth 18/34).

    Args: as ``ResNet`` (depth 18..152, variant a/b/c/d/vd, ...), with squeeze-excitation in
    every block and a 128-channel stem.
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
    ):
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
