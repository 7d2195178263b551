"""Convolution + normalisation (+ activation) units shared by backbones and necks.

Two classes differ only in their sublayer names, which are the checkpoint format
(PaddleDetection 2.x ``.pdparams``):

- ``ConvNormLayer``: ``conv.weight`` + ``batch_norm.*`` (DarkNet, the YOLOv3 neck).
- ``MobileConvNormLayer``: ``_conv.weight`` + ``_batch_norm.*`` (MobileNetV1).
- ``ConvNorm``: ``conv.weight`` + ``norm.*`` (PaddleDetection 2.x's ``layers.ConvNormLayer``;
  the necks TwoWayFPN, PConvFPN and BiFPN).

The convolution has no bias (the norm layer provides it); padding keeps ``H/stride``.
The norm comes from ``norms.build_norm`` (re-exported here). A norm with the activation built
in (EvoNorm) replaces the activation: none is applied after it, and with ``act=None`` the
norm's linear variant is built. ``norm_type=None`` builds no norm: the convolution then has a
bias (initialised to 0).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, KaimingNormal
from paddle.regularizer import L2Decay

from ppdet.modeling.layers.norms import EPS, MOMENTUM, NORM_TYPES, build_norm

__all__ = [
    "NORM_TYPES",
    "ConvNorm",
    "ConvNormLayer",
    "MobileConvNormLayer",
    "activate",
    "build_norm",
]

ACTIVATIONS = (None, "relu", "leaky", "relu6", "swish")
LEAKY_SLOPE = 0.1  # YOLOv3's leaky ReLU


def activate(x: paddle.Tensor, act: str | None) -> paddle.Tensor:
    """Apply the activation named ``act`` (None: identity)."""
    if act is None:
        return x
    if act == "relu":
        return F.relu(x)
    if act == "leaky":
        return F.leaky_relu(x, LEAKY_SLOPE)
    if act == "relu6":
        return F.relu6(x)
    if act == "swish":  # x * sigmoid(x) (EfficientNet, BiFPN)
        return F.swish(x)
    raise ValueError(f"unknown activation {act!r} (known: {ACTIVATIONS})")


def _check_act(act: str | None) -> str | None:
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r} (known: {ACTIVATIONS})")
    return act


def _conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    groups: int,
    conv_decay: float | None,
    bias: bool = False,
) -> nn.Conv2D:
    regularizer = None if conv_decay is None else L2Decay(conv_decay)
    return nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        groups=groups,
        weight_attr=ParamAttr(initializer=KaimingNormal(), regularizer=regularizer),
        bias_attr=ParamAttr(initializer=Constant(0.0), regularizer=regularizer) if bias else False,
    )


class ConvNormLayer(nn.Layer):
    """Conv2D (no bias) -> norm -> activation, as ``conv`` and ``batch_norm`` sublayers.

    x: [B, in_channels, H, W] -> [B, out_channels, ceil(H / stride), ceil(W / stride)].
    conv_decay: L2 decay on the conv weight; None leaves it to the optimizer's global decay.
    norm_type, norm_decay, freeze_norm, num_groups: as in ``build_norm``; norm_type None: no
    norm sublayer, the conv gets a bias instead.
    norm_momentum, norm_eps: the norm's running-statistics momentum and epsilon (``build_norm``'s
    ``momentum`` / ``eps``; Paddle's 0.9 / 1e-5 by default).
    The sublayer names are the checkpoint format; subclasses change them via ``sublayer_names``.
    """

    sublayer_names = ("conv", "batch_norm")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "leaky",
        norm_type: str | None = "bn",
        norm_decay: float = 0.0,
        conv_decay: float | None = None,
        freeze_norm: bool = False,
        num_groups: int = 32,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        act = _check_act(act)
        conv_name, norm_name = self.sublayer_names
        conv = _conv(
            in_channels, out_channels, kernel_size, stride, groups, conv_decay, norm_type is None
        )
        self.add_sublayer(conv_name, conv)
        self.has_norm = norm_type is not None
        self.act = act
        if self.has_norm:
            norm = build_norm(
                out_channels,
                norm_type,
                norm_decay,
                freeze_norm,
                num_groups,
                nonlinear=act is not None,
                eps=norm_eps,
                momentum=norm_momentum,
            )
            self.add_sublayer(norm_name, norm)
            self.act = None if getattr(norm, "fuses_activation", False) else act

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        conv_name, norm_name = self.sublayer_names
        y = self._sub_layers[conv_name](x)
        if self.has_norm:
            y = self._sub_layers[norm_name](y)
        return activate(y, self.act)


class ConvNorm(ConvNormLayer):
    """As ``ConvNormLayer`` (default: no activation) with sublayers ``conv`` and ``norm``, the
    names of PaddleDetection 2.x's ``layers.ConvNormLayer``."""

    sublayer_names = ("conv", "norm")

    def __init__(self, *args, act: str | None = None, **kwargs):
        super().__init__(*args, act=act, **kwargs)


class MobileConvNormLayer(ConvNormLayer):
    """As ``ConvNormLayer`` (default ReLU) with sublayers ``_conv`` and ``_batch_norm``
    (MobileNetV1)."""

    sublayer_names = ("_conv", "_batch_norm")

    def __init__(self, *args, act: str | None = "relu", **kwargs):
        super().__init__(*args, act=act, **kwargs)
