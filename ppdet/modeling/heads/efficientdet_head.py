"""EfficientDet head (Tan et al. 2020, "EfficientDet"): RetinaNet's anchor head with
depthwise-separable convolutions, swish and a norm per pyramid level.

Class net and box net each repeat ``repeat`` times (D0: 3): separable conv (depthwise 3x3 without
bias, pointwise 1x1 with bias; weights shared by all levels) -> norm of that level (BN in the
paper, momentum 0.997 / eps 1e-4 in PaddleDetection 0.5's port) -> swish (none after an
EvoNorm, which is its own activation). The predictors ``cls_pred`` [A * C] and ``box_pred``
[4 A] are separable convs too, shared by all levels, the class bias set from ``prior_prob``.

Sublayer names follow PaddleDetection 0.5's EfficientHead parameters (``cls_pred_conv_{i}_dw_w``
-> ``cls_pred_conv_{i}.dw.weight``, ``cls_pred_bn_{level}_{i}_w`` -> ``cls_pred_bn_{level}_{i}
.weight``, ``cls_pred_pw_b`` -> ``cls_pred.pw.bias``; ``box_*`` alike).

Anchors, target assignment, losses and post-processing are ``RetinaHead``'s (this head is a
``RetinaHead`` with other towers and predictors): focal loss plus ``loss_bbox`` (smooth-L1 on
deltas or an IoU-family loss on decoded boxes).
"""

from __future__ import annotations

import math

import paddle
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, TruncatedNormal

from ppdet.config.registry import register
from ppdet.modeling.heads.retina_head import RetinaHead
from ppdet.modeling.layers.conv_norm import ACTIVATIONS, activate
from ppdet.modeling.layers.norms import NORM_TYPES, build_norm, fit_num_groups

__all__ = ["EfficientDetFeat", "EfficientDetHead", "SeparableConv"]

BN_MOMENTUM = 0.997  # PaddleDetection 0.5's EfficientHead (Paddle convention: running weight)
BN_EPS = 1e-4


class SeparableConv(nn.Layer):
    """Depthwise 3x3 (``dw``, no bias) then pointwise 1x1 (``pw``, bias ``bias``):
    [B, in_channels, H, W] -> [B, out_channels, H, W]. Weights: truncated normal with std
    sqrt(1 / fan_in) (PaddleDetection 0.5)."""

    def __init__(self, in_channels: int, out_channels: int, bias: float = 0.0):
        super().__init__()
        self.dw = nn.Conv2D(
            in_channels,
            in_channels,
            3,
            padding=1,
            groups=in_channels,
            weight_attr=ParamAttr(initializer=TruncatedNormal(0.0, math.sqrt(1.0 / 9))),
            bias_attr=False,
        )
        self.pw = nn.Conv2D(
            in_channels,
            out_channels,
            1,
            weight_attr=ParamAttr(initializer=TruncatedNormal(0.0, math.sqrt(1.0 / in_channels))),
            bias_attr=ParamAttr(initializer=Constant(bias)),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pw(self.dw(x))


@register("head")
class EfficientDetFeat(nn.Layer):
    """The class and box nets of EfficientDet (module docstring).

    forward(x [B, feat_in, H, W], level) -> (cls_feat, box_feat), each [B, feat_out, H, W].

    Args:
        feat_in: channels of the neck outputs (the BiFPN width).
        feat_out: channels of the nets (D0: 64, the BiFPN width); with repeat 0 it is feat_in.
        repeat: separable conv layers per net (D0: 3).
        num_levels: pyramid levels, one norm each per layer (D0: P3-P7, 5).
        norm_type: ``build_norm`` type, "bn" in the paper; None: no norm (convs with bias).
        act: activation after each norm ("swish"; "relu" or None also work).
        norm_groups: groups of gn / evonorm_s0, lowered to a divisor of feat_out.
        norm_momentum, norm_eps: of the BN-family norms (0.997, 1e-4).
    """

    def __init__(
        self,
        feat_in: int = 64,
        feat_out: int = 64,
        repeat: int = 3,
        num_levels: int = 5,
        norm_type: str | None = "bn",
        act: str | None = "swish",
        norm_groups: int = 32,
        norm_momentum: float = BN_MOMENTUM,
        norm_eps: float = BN_EPS,
    ):
        super().__init__()
        if repeat < 0 or num_levels < 1:
            raise ValueError(
                f"EfficientDetFeat: repeat must be >= 0 and num_levels >= 1, got {repeat}, "
                f"{num_levels}"
            )
        if norm_type is not None and norm_type not in NORM_TYPES:
            raise ValueError(
                f"EfficientDetFeat.norm_type: unknown {norm_type!r}; accepted: null, "
                f"{', '.join(NORM_TYPES)}"
            )
        if act not in ACTIVATIONS:
            raise ValueError(f"EfficientDetFeat.act: unknown {act!r}; accepted: {ACTIVATIONS}")
        feat_out = feat_out if repeat else feat_in
        self.feat_in, self.feat_out, self.repeat, self.act = feat_in, feat_out, repeat, act
        self.num_levels = num_levels
        groups = fit_num_groups(feat_out, norm_groups)
        self.fused_act = False
        for prefix in ("cls", "box"):
            for i in range(repeat):
                channels = feat_in if i == 0 else feat_out
                self.add_sublayer(f"{prefix}_pred_conv_{i}", SeparableConv(channels, feat_out))
            if norm_type is None:
                continue
            for level in range(num_levels):
                for i in range(repeat):
                    norm = build_norm(
                        feat_out, norm_type, num_groups=groups, eps=norm_eps, momentum=norm_momentum
                    )
                    self.fused_act = getattr(norm, "fuses_activation", False)
                    self.add_sublayer(f"{prefix}_pred_bn_{level}_{i}", norm)
        self.norm_type = norm_type

    def _net(self, x: paddle.Tensor, prefix: str, level: int) -> paddle.Tensor:
        for i in range(self.repeat):
            x = getattr(self, f"{prefix}_pred_conv_{i}")(x)
            if self.norm_type is not None:
                x = getattr(self, f"{prefix}_pred_bn_{level}_{i}")(x)
            if not self.fused_act:
                x = activate(x, self.act)
        return x

    def forward(self, x: paddle.Tensor, level: int = 0) -> tuple[paddle.Tensor, paddle.Tensor]:
        if not 0 <= level < self.num_levels:
            raise ValueError(
                f"EfficientDetFeat: level {level} outside its {self.num_levels} levels; set "
                "EfficientDetFeat.num_levels to the neck's level count"
            )
        return self._net(x, "cls", level), self._net(x, "box", level)


@register("head")
class EfficientDetHead(RetinaHead):
    """``RetinaHead`` (same arguments, outputs, anchors, losses) with EfficientDet's nets:
    ``conv_feat`` is an ``EfficientDetFeat`` and the predictors are separable convs
    (``cls_pred``, ``box_pred``; see the module docstring)."""

    FEAT = "EfficientDetFeat"

    @staticmethod
    def default_feat(feat_in: int) -> nn.Layer:
        return EfficientDetFeat(feat_in=feat_in, feat_out=feat_in)

    def build_predictors(self, feat_out: int, num_anchors: int, cls_bias: float) -> None:
        self.cls_pred = SeparableConv(feat_out, num_anchors * self.num_classes, bias=cls_bias)
        self.box_pred = SeparableConv(feat_out, num_anchors * 4)

    def predict_level(
        self, cls_feat: paddle.Tensor, reg_feat: paddle.Tensor, level: int
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        return self.cls_pred(cls_feat), self.box_pred(reg_feat)
