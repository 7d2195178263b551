"""Feature Pyramid Network (Lin et al. 2017), the neck of the R-CNN family and RetinaNet.

With n backbone maps C_1..C_n (shallowest first, each half the size of the previous; the
deepest is called res5, the one before res4, and so on):

    I_n = fpn_inner_res5_sum(C_n)                                   1x1 conv
    I_k = fpn_inner_res{k}_sum_lateral(C_k) + upsample2(I_{k+1})    1x1 conv + nearest 2x
    P_k = fpn_res{k}_sum(I_k)                                       3x3 conv

then ``extra_stage`` coarser levels, each stride 2 below the previous one:

- ``has_extra_convs`` false (R-CNN): at most one, P6 = P5[:, :, ::2, ::2] (a max-pool with
  kernel 1, stride 2); no parameters.
- ``has_extra_convs`` true (RetinaNet): ``fpn_6`` (3x3, stride 2) on C5 (``use_c5``, input
  in_channels[-1]) or on P5 (input out_channel), no ReLU before it; then ``fpn_7``, ``fpn_8``,
  ... (3x3, stride 2) on the previous extra level, after a ReLU when
  ``relu_before_extra_convs``.

Every conv has a bias, initialised to 0, and an XavierUniform weight whose fan-out is taken
as its input size (in_channels * k * k; the extra convs: out_channel * 9). With ``norm_type``
each conv becomes ``<name>.conv`` (no bias) + ``<name>.norm`` with no activation (the
lateral 1x1 convs too, unless ``norm_laterals`` is false).
Parameter names are the PaddleDetection 2.x checkpoint format (``neck.fpn_res3_sum.weight``).
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, XavierUniform

from ppdet.config.registry import register
from ppdet.modeling.layers.norms import EPS, MOMENTUM, build_norm, fit_num_groups

__all__ = ["FPN"]


def _conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, fan_out: int, bias: bool
) -> nn.Conv2D:
    """Conv2D with 'same' padding, XavierUniform(fan_out) weight and an optional zero bias."""
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        weight_attr=ParamAttr(initializer=XavierUniform(fan_out=fan_out)),
        bias_attr=ParamAttr(initializer=Constant(0.0)) if bias else False,
    )


class FPNConvNorm(nn.Layer):
    """``conv`` (no bias) then ``norm``, no activation: an FPN conv when norm_type is set.

    x: [B, in_channels, H, W] -> [B, out_channels, ceil(H / stride), ceil(W / stride)].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        fan_out: int,
        norm_type: str,
        norm_decay: float,
        freeze_norm: bool,
        norm_groups: int = 32,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel_size, stride, fan_out, bias=False)
        groups = fit_num_groups(out_channels, norm_groups)
        self.norm = build_norm(
            out_channels,
            norm_type,
            norm_decay,
            freeze_norm,
            groups,
            eps=norm_eps,
            momentum=norm_momentum,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.conv(x))


def _check_scales(spatial_scales: list[float], num_levels: int) -> None:
    if len(spatial_scales) != num_levels:
        raise ValueError(
            f"FPN: spatial_scales has {len(spatial_scales)} entries but in_channels has "
            f"{num_levels}; give one scale per input map (e.g. [0.125, 0.0625, 0.03125] for "
            "res3-res5)"
        )
    halving = all(abs(b * 2 - a) <= 1e-9 * a for a, b in zip(spatial_scales, spatial_scales[1:]))
    if not halving or not all(s > 0 for s in spatial_scales):
        raise ValueError(
            f"FPN: spatial_scales {spatial_scales} must be positive and halve from one "
            "level to the next"
        )


@register("neck")
class FPN(nn.Layer):
    """Feature pyramid with top-down pathway and lateral connections (see the module docstring).

    forward(feats): feats are the backbone maps, shallowest first, [B, in_channels[i], H_i,
    W_i] with H_i = H / stride_i -> list of len(in_channels) + extra_stage maps, shallowest
    first, each [B, out_channel, H_j, W_j] (stride out_strides[j]). With the defaults and
    ResNet C2-C5: P2-P6, strides 4, 8, 16, 32, 64; RetinaNet (C3-C5, has_extra_convs,
    extra_stage 2, use_c5 false): P3-P7, strides 8..128.

    Args:
        in_channels: channels of the input maps, shallowest first (the backbone's out_channels).
        out_channel: channels of every output map.
        spatial_scales: 1 / stride of each input map (the last is res5, the deepest).
        has_extra_convs: extra levels by stride-2 3x3 convs (fpn_6, ...) instead of max-pool.
        extra_stage: number of extra levels below the deepest input (0: none).
        use_c5: the first extra conv reads the deepest input map instead of its output P5.
        norm_type: None (plain convs with bias) or a ``build_norm`` type ("gn", "bn", ...).
        norm_decay, freeze_norm: as in ``build_norm`` (its frozen norm also fixes the running
            statistics; 2.x's FPN only zeroes the norm's learning rate).
        norm_groups: groups of "gn" / "evonorm_s0", lowered to a divisor of out_channel
            (``fit_num_groups``: 256 -> 32, 88 -> 22).
        norm_momentum, norm_eps: running-statistics momentum and epsilon of the norms (Paddle's
            0.9 / 1e-5 by default; ``build_norm``'s ``momentum`` / ``eps``).
        norm_laterals: with norm_type, also the lateral 1x1 convs get a norm (2.x); False
            keeps them plain convs with bias and normalises only the 3x3 output and extra
            convs (seed 000's TF2 RetinaNet).
        relu_before_extra_convs: ReLU on the input of every extra conv but the first.

    Attributes: out_channels, out_strides (ints), spatial_scales (floats) of the outputs;
    ``conventions`` (``ppdet.modeling.conventions``): with extra convs, ``{"fpn_use_c5":
    use_c5}`` (PaddleDetection v0.1's RetinaNet computes P6 from C5).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channel: int = 256,
        spatial_scales: Sequence[float] = (0.25, 0.125, 0.0625, 0.03125),
        has_extra_convs: bool = False,
        extra_stage: int = 1,
        use_c5: bool = True,
        norm_type: str | None = None,
        norm_decay: float = 0.0,
        freeze_norm: bool = False,
        relu_before_extra_convs: bool = True,
        norm_groups: int = 32,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
        norm_laterals: bool = True,
    ):
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        spatial_scales = [float(s) for s in spatial_scales]
        if not in_channels:
            raise ValueError("FPN: in_channels is empty; give the backbone's out_channels")
        if len(in_channels) > 4:
            raise ValueError(
                f"FPN: at most 4 input maps (res2-res5) are supported, got in_channels "
                f"{in_channels}"
            )
        _check_scales(spatial_scales, len(in_channels))
        if extra_stage < 0 or (extra_stage > 1 and not has_extra_convs):
            raise ValueError(
                f"FPN: extra_stage {extra_stage} is not supported: use 0 or 1 (a max-pooled "
                "P6), or set has_extra_convs for more extra levels"
            )
        self.in_channels = in_channels
        self.num_levels = len(in_channels)
        self.has_extra_convs = has_extra_convs
        self.extra_stage = extra_stage
        self.use_c5 = use_c5
        self.relu_before_extra_convs = relu_before_extra_convs

        def make(
            name: str, c_in: int, k: int, stride: int, fan_out: int, norm: bool = True
        ) -> nn.Layer:
            if norm_type is None or not norm:
                layer = _conv(c_in, out_channel, k, stride, fan_out, bias=True)
            else:
                layer = FPNConvNorm(
                    c_in,
                    out_channel,
                    k,
                    stride,
                    fan_out,
                    norm_type,
                    norm_decay,
                    freeze_norm,
                    norm_groups,
                    norm_momentum,
                    norm_eps,
                )
            return self.add_sublayer(name, layer)

        self.laterals: list[nn.Layer] = []
        self.outputs: list[nn.Layer] = []
        first_stage = 6 - self.num_levels  # the deepest input is res5
        for i, c_in in enumerate(in_channels):
            stage = first_stage + i
            lateral = f"fpn_inner_res{stage}_sum" + ("" if i == self.num_levels - 1 else "_lateral")
            self.laterals.append(make(lateral, c_in, 1, 1, c_in, norm=norm_laterals))
            self.outputs.append(make(f"fpn_res{stage}_sum", out_channel, 3, 1, out_channel * 9))

        self.extras: list[nn.Layer] = []
        self.conventions = {"fpn_use_c5": bool(use_c5)} if has_extra_convs and extra_stage else {}
        if has_extra_convs:
            for j in range(extra_stage):
                c_in = in_channels[-1] if j == 0 and use_c5 else out_channel
                self.extras.append(make(f"fpn_{6 + j}", c_in, 3, 2, out_channel * 9))

        scales = spatial_scales + [spatial_scales[-1] / 2**j for j in range(1, extra_stage + 1)]
        self.spatial_scales = scales
        self.out_strides = [int(round(1.0 / s)) for s in scales]
        self.out_channels = [out_channel] * len(scales)

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        if len(feats) != self.num_levels:
            raise ValueError(
                f"FPN expects {self.num_levels} maps (in_channels {self.in_channels}), got "
                f"{len(feats)}"
            )
        inner = self.laterals[-1](feats[-1])  # [B, out, H_n, W_n]
        outs = [self.outputs[-1](inner)]
        for i in range(self.num_levels - 2, -1, -1):
            lateral = self.laterals[i](feats[i])  # [B, out, H_i, W_i], H_i ~ 2 H_{i+1}
            # nearest upsampling to the lateral's size: exactly 2x when the sizes divide
            up = F.interpolate(inner, size=paddle.shape(lateral)[2:], mode="nearest")
            inner = lateral + up
            outs.insert(0, self.outputs[i](inner))
        if self.extra_stage and not self.has_extra_convs:  # P6: every other pixel of P5
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))  # [B, out, H/2, W/2]
        for j, conv in enumerate(self.extras):
            x = feats[-1] if j == 0 and self.use_c5 else outs[-1]
            if j > 0 and self.relu_before_extra_convs:
                x = F.relu(x)
            outs.append(conv(x))  # [B, out, ceil(H/2), ceil(W/2)]
        return outs
