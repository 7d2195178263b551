"""Normalisation layers over [B, C, H, W] float32 maps, and the ``build_norm`` factory.

``norm_type`` (one per model part) -> layer:

- ``"bn"``: ``nn.BatchNorm2D`` (batch statistics in train, running ones in eval).
- ``"sync_bn"``: ``SyncBatchNorm2D``: cross-device statistics when training on more than one
  CUDA device, otherwise exactly ``"bn"`` (Paddle has no CPU ``sync_batch_norm`` kernel).
- ``"affine_channel"``: ``AffineChannel``, BN with frozen statistics (R-CNN/RetinaNet backbones).
- ``"gn"``: ``nn.GroupNorm``.
- ``"evonorm_s0"`` / ``"evonorm_b0"``: ``EvoNorm`` (Liu et al. 2020), a norm with the
  activation built in (``fuses_activation``), so ConvNormLayer applies no activation after it.
- ``"sn"``: ``SwitchableNorm`` (Luo et al. 2018).

The BN family (bn, sync_bn, affine_channel) names its tensors ``weight``, ``bias``, ``_mean``,
``_variance`` (the PaddleDetection 2.x checkpoint format), frozen or not, so one ``.pdparams``
loads into any of them. Variances are biased (divide by the element count), as Paddle's BN
keeps them. Running statistics follow Paddle's convention:
``running = momentum * running + (1 - momentum) * batch``.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant
from paddle.regularizer import L2Decay

__all__ = [
    "NORM_TYPES",
    "AffineChannel",
    "EvoNorm",
    "SwitchableNorm",
    "SyncBatchNorm2D",
    "build_norm",
    "fit_num_groups",
]

NORM_TYPES = ("bn", "sync_bn", "affine_channel", "gn", "evonorm_s0", "evonorm_b0", "sn")
EPS = 1e-5
MOMENTUM = 0.9


def _param_attr(norm_decay: float, freeze: bool) -> ParamAttr:
    """Attribute of a norm parameter: L2 decay ``norm_decay`` (0 = none), learning rate 0 when
    frozen."""
    return ParamAttr(learning_rate=0.0 if freeze else 1.0, regularizer=L2Decay(norm_decay))


def _channel_param(layer: nn.Layer, channels: int, attr: ParamAttr, value: float) -> paddle.Tensor:
    """A [channels] float32 parameter of ``layer`` initialised to ``value``."""
    return layer.create_parameter(
        [channels], attr=attr, dtype="float32", default_initializer=Constant(value)
    )


def _per_channel(t: paddle.Tensor) -> paddle.Tensor:
    """[C] -> [1, C, 1, 1] for broadcasting over a [B, C, H, W] map."""
    return t.reshape([1, -1, 1, 1])


def _var(x: paddle.Tensor, axis: list[int], keepdim: bool = False) -> paddle.Tensor:
    """Biased variance of ``x`` over ``axis`` (paddle.var warns about a dtype promotion)."""
    centred = x - paddle.mean(x, axis=axis, keepdim=True)
    return paddle.mean(centred * centred, axis=axis, keepdim=keepdim)


def _update_running(running: paddle.Tensor, batch: paddle.Tensor, momentum: float) -> None:
    """running <- momentum * running + (1 - momentum) * batch, in place, outside autograd."""
    with paddle.no_grad():
        paddle.assign(momentum * running + (1.0 - momentum) * batch.detach(), output=running)


def _freeze(layer: nn.Layer) -> nn.Layer:
    for p in layer.parameters():
        p.stop_gradient = True
    return layer


class SyncBatchNorm2D(nn.SyncBatchNorm):
    """``nn.SyncBatchNorm`` that computes plain BatchNorm unless it runs on a CUDA device with
    more than one process (Paddle 3.1.1 has no CPU ``sync_batch_norm`` kernel: it raises
    NotFound). Same tensors (``weight``, ``bias``, ``_mean``, ``_variance``) as
    ``nn.BatchNorm2D``, so checkpoints are interchangeable.

    x: [B, C, H, W] -> [B, C, H, W].
    """

    @staticmethod
    def syncs() -> bool:
        """True when statistics are shared across devices: CUDA device and world size > 1."""
        return (
            paddle.is_compiled_with_cuda()
            and paddle.get_device().startswith("gpu")
            and paddle.distributed.get_world_size() > 1
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.syncs():
            return super().forward(x)
        return F.batch_norm(
            x,
            self._mean,
            self._variance,
            weight=self.weight,
            bias=self.bias,
            training=self.training,
            momentum=self._momentum,
            epsilon=self._epsilon,
            data_format=self._data_format,
        )


class AffineChannel(nn.Layer):
    """BatchNorm with frozen statistics: always (train and eval)
    y = (x - _mean) / sqrt(_variance + eps) * weight + bias; ``_mean``/``_variance`` are never
    updated. Loads PaddleDetection BN tensors unchanged.

    x: [B, C, H, W] -> [B, C, H, W]. freeze: also fix ``weight`` and ``bias`` (no gradient,
    learning rate 0).
    """

    def __init__(
        self, channels: int, norm_decay: float = 0.0, freeze: bool = False, eps: float = EPS
    ):
        super().__init__()
        self.eps = eps
        self.weight = _channel_param(self, channels, _param_attr(norm_decay, freeze), 1.0)
        self.bias = _channel_param(self, channels, _param_attr(norm_decay, freeze), 0.0)
        self.register_buffer("_mean", paddle.zeros([channels], "float32"))
        self.register_buffer("_variance", paddle.ones([channels], "float32"))
        if freeze:
            _freeze(self)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        scale = self.weight * paddle.rsqrt(self._variance + self.eps)  # [C]
        shift = self.bias - self._mean * scale  # [C]
        return x * _per_channel(scale) + _per_channel(shift)


class EvoNorm(nn.Layer):
    """EvoNorm-S0 / -B0 (Liu et al. 2020, "Evolving Normalization-Activation Layers"): a
    normalisation with the activation inside it.

    S0: y = x * sigmoid(v1 * x) / group_std(x) * weight + bias, group_std over (C/G, H, W) per
        sample (groups as in GN); batch independent, no running statistics.
    B0: y = x / max(sqrt(batch_var + eps), v1 * x + instance_std(x)) * weight + bias,
        batch_var over (B, H, W) per channel in training (``_variance`` follows it with
        ``momentum``), ``_variance`` in eval; instance_std over (H, W) per sample and channel.
    std = sqrt(biased variance + eps). nonlinear=False gives the linear variants (S0: x /
    group_std(x); B0: x / sqrt(batch_var + eps)) without ``v1``, for a norm that no activation
    follows (e.g. before a residual addition).

    Parameters ``weight`` (1), ``bias`` (0), ``v1`` (1) of shape [C]; B0 buffer ``_variance``
    [C]. freeze: parameters fixed and B0 always uses ``_variance`` (never updated).
    x: [B, C, H, W] -> [B, C, H, W].
    """

    def __init__(
        self,
        channels: int,
        version: str = "S0",
        num_groups: int = 32,
        nonlinear: bool = True,
        norm_decay: float = 0.0,
        freeze: bool = False,
        eps: float = EPS,
        momentum: float = MOMENTUM,
    ):
        super().__init__()
        if version not in ("S0", "B0"):
            raise ValueError(f"EvoNorm version must be 'S0' or 'B0', got {version!r}")
        if version == "S0":
            _check_groups(channels, num_groups, "evonorm_s0")
        self.version, self.num_groups, self.nonlinear = version, num_groups, nonlinear
        self.eps, self.momentum, self.frozen = eps, momentum, freeze
        self.weight = _channel_param(self, channels, _param_attr(norm_decay, freeze), 1.0)
        self.bias = _channel_param(self, channels, _param_attr(norm_decay, freeze), 0.0)
        if nonlinear:
            self.v1 = _channel_param(self, channels, _param_attr(norm_decay, freeze), 1.0)
        if version == "B0":
            self.register_buffer("_variance", paddle.ones([channels], "float32"))
        if freeze:
            _freeze(self)

    @property
    def fuses_activation(self) -> bool:
        """True when this layer is also the activation (ConvNormLayer then applies none)."""
        return self.nonlinear

    def _group_std(self, x: paddle.Tensor) -> paddle.Tensor:
        """[B, C, H, W] -> [B, C, 1, 1], the std of each channel's group."""
        channels = x.shape[1]
        grouped = x.reshape([0, self.num_groups, -1])  # [B, G, C/G * H * W]
        std = paddle.sqrt(_var(grouped, axis=[2]) + self.eps)  # [B, G]
        std = paddle.repeat_interleave(std, channels // self.num_groups, axis=1)  # [B, C]
        return std.reshape([0, channels, 1, 1])

    def _batch_std(self, x: paddle.Tensor) -> paddle.Tensor:
        """[B, C, H, W] -> [1, C, 1, 1]: batch std in training (updating ``_variance``),
        running std in eval or when frozen."""
        if self.training and not self.frozen:
            var = _var(x, axis=[0, 2, 3])  # [C]
            _update_running(self._variance, var, self.momentum)
        else:
            var = self._variance
        return _per_channel(paddle.sqrt(var + self.eps))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.version == "S0":
            num = x * F.sigmoid(_per_channel(self.v1) * x) if self.nonlinear else x
            y = num / self._group_std(x)
        else:
            den = self._batch_std(x)
            if self.nonlinear:
                inst_var = _var(x, axis=[2, 3], keepdim=True)  # [B,C,1,1]
                den = paddle.maximum(
                    den, _per_channel(self.v1) * x + paddle.sqrt(inst_var + self.eps)
                )
            y = x / den
        return y * _per_channel(self.weight) + _per_channel(self.bias)


class SwitchableNorm(nn.Layer):
    """Switchable Normalization (Luo et al. 2018): y = (x - mean) / sqrt(var + eps) * weight +
    bias, where mean and var are mixes of the instance (per sample and channel, over H, W),
    layer (per sample, over C, H, W) and batch (per channel, over B, H, W) statistics, weighted
    by softmax(``mean_weight``) and softmax(``var_weight``) (order IN, LN, BN; [3] each,
    initially equal). The batch terms are the running ``_mean``/``_variance`` in eval (updated
    with ``momentum`` in training). freeze: parameters fixed and the running statistics used
    (never updated) also in training.

    x: [B, C, H, W] -> [B, C, H, W].
    """

    def __init__(
        self,
        channels: int,
        norm_decay: float = 0.0,
        freeze: bool = False,
        eps: float = EPS,
        momentum: float = MOMENTUM,
    ):
        super().__init__()
        self.eps, self.momentum, self.frozen = eps, momentum, freeze
        self.weight = _channel_param(self, channels, _param_attr(norm_decay, freeze), 1.0)
        self.bias = _channel_param(self, channels, _param_attr(norm_decay, freeze), 0.0)
        self.mean_weight = _channel_param(self, 3, _param_attr(norm_decay, freeze), 1.0)
        self.var_weight = _channel_param(self, 3, _param_attr(norm_decay, freeze), 1.0)
        self.register_buffer("_mean", paddle.zeros([channels], "float32"))
        self.register_buffer("_variance", paddle.ones([channels], "float32"))
        if freeze:
            _freeze(self)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        mean_in = paddle.mean(x, axis=[2, 3], keepdim=True)  # [B, C, 1, 1]
        var_in = _var(x, axis=[2, 3], keepdim=True)  # [B, C, 1, 1]
        sq_in = var_in + mean_in**2  # E[x^2] per sample and channel (LN/BN variances
        # below are E[x^2] - mean^2, clipped at 0 against float cancellation)
        mean_ln = paddle.mean(mean_in, axis=1, keepdim=True)  # [B, 1, 1, 1]
        var_ln = (paddle.mean(sq_in, axis=1, keepdim=True) - mean_ln**2).clip(min=0.0)
        if self.training and not self.frozen:
            mean_bn = paddle.mean(mean_in, axis=0, keepdim=True)  # [1, C, 1, 1]
            var_bn = (paddle.mean(sq_in, axis=0, keepdim=True) - mean_bn**2).clip(min=0.0)
            _update_running(self._mean, mean_bn.flatten(), self.momentum)
            _update_running(self._variance, var_bn.flatten(), self.momentum)
        else:
            mean_bn, var_bn = _per_channel(self._mean), _per_channel(self._variance)
        wm = F.softmax(self.mean_weight)  # [3]
        wv = F.softmax(self.var_weight)  # [3]
        mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn  # [B, C, 1, 1]
        var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn  # [B, C, 1, 1]
        y = (x - mean) / paddle.sqrt(var + self.eps)
        return y * _per_channel(self.weight) + _per_channel(self.bias)


def _check_groups(channels: int, num_groups: int, norm_type: str) -> None:
    if num_groups <= 0 or channels % num_groups:
        raise ValueError(
            f"norm_type {norm_type!r}: {channels} channels do not split into num_groups="
            f"{num_groups} groups; choose num_groups dividing {channels}"
        )


def fit_num_groups(channels: int, num_groups: int = 32) -> int:
    """The largest divisor of ``channels`` not above ``num_groups``: a group count for "gn" /
    "evonorm_s0" that fits any width (256 -> 32, 64 -> 32, 88 -> 22, 40 -> 20, 7 -> 7).

    Necks and heads whose width is a config choice (BiFPN 64/88/..., FPN 256) pass their
    requested group count through this; ``build_norm`` itself refuses a count that does not
    divide.
    """
    if channels <= 0 or num_groups <= 0:
        raise ValueError(
            f"fit_num_groups: channels and num_groups must be > 0, got {channels}, {num_groups}"
        )
    return max(g for g in range(1, min(channels, num_groups) + 1) if channels % g == 0)


def build_norm(
    channels: int,
    norm_type: str = "bn",
    norm_decay: float = 0.0,
    freeze_norm: bool = False,
    num_groups: int = 32,
    nonlinear: bool = True,
    eps: float = EPS,
    momentum: float = MOMENTUM,
) -> nn.Layer:
    """A norm layer over [B, channels, H, W] maps (see the module docstring for ``norm_type``).

    norm_decay: L2 decay on the norm's learnable parameters (0 = none, and the optimizer's
        global decay does not reach them either).
    freeze_norm: the PaddleDetection 2.x frozen norm: learnable parameters fixed (no gradient,
        learning rate 0) and running statistics used and kept unchanged also in train mode
        (bn/sync_bn: ``BatchNorm2D(use_global_stats=True)``).
    num_groups: groups of "gn" and "evonorm_s0" (must divide ``channels``).
    nonlinear: EvoNorm only; False gives the linear variant (no activation follows the norm).
    eps, momentum: the norm's epsilon and running-statistics momentum (Paddle's convention:
        running = momentum * running + (1 - momentum) * batch), e.g. 1e-3 / 0.99 for
        EfficientNet; momentum is unused by the norms without running statistics.
    """
    if norm_type not in NORM_TYPES:
        raise ValueError(f"unknown norm_type {norm_type!r} (known: {', '.join(NORM_TYPES)})")
    if norm_type in ("bn", "sync_bn"):
        kw = {
            "weight_attr": _param_attr(norm_decay, freeze_norm),
            "bias_attr": _param_attr(norm_decay, freeze_norm),
        }
        if freeze_norm:  # fixed statistics: nothing to synchronise
            return _freeze(nn.BatchNorm2D(channels, epsilon=eps, use_global_stats=True, **kw))
        if norm_type == "sync_bn":
            return SyncBatchNorm2D(channels, momentum=momentum, epsilon=eps, **kw)
        return nn.BatchNorm2D(channels, momentum=momentum, epsilon=eps, **kw)
    if norm_type == "affine_channel":
        return AffineChannel(channels, norm_decay, freeze_norm, eps)
    if norm_type == "gn":
        _check_groups(channels, num_groups, norm_type)
        norm = nn.GroupNorm(
            num_groups,
            channels,
            epsilon=eps,
            weight_attr=_param_attr(norm_decay, freeze_norm),
            bias_attr=_param_attr(norm_decay, freeze_norm),
        )
        return _freeze(norm) if freeze_norm else norm
    if norm_type in ("evonorm_s0", "evonorm_b0"):
        version = norm_type[-2:].upper()
        return EvoNorm(
            channels, version, num_groups, nonlinear, norm_decay, freeze_norm, eps, momentum
        )
    return SwitchableNorm(channels, norm_decay, freeze_norm, eps, momentum)
