"""SSD head (Liu et al. 2016): one box and one class predictor per feature map.

Level i has P_i priors per location (``AnchorGeneratorSSD.num_priors``) and two convs on the
backbone map: ``boxes{i}`` with 4 P_i outputs (channel 4 p + k: dx, dy, dw, dh) and
``scores{i}`` with P_i (C + 1) outputs (channel p (C + 1) + c, softmax, background last).
SSD uses ``kernel_size`` 3 / ``padding`` 1 convs with bias (VGG) or 1x1 ones (MobileNetV1);
SSDLite (``use_sepconv``) replaces each by ``dw_conv`` (3x3 depthwise, no bias) -> ``bn`` ->
ReLU6 -> ``pw_conv`` (1x1, no bias). Names equal PaddleDetection 2.x's.

The outputs of all levels are flattened to [B, N, 4] and [B, N, C + 1], row
``offset_i + (y W_i + x) P_i + p``: the order of the concatenated priors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.regularizer import L2Decay

from ppdet.config.registry import register
from ppdet.modeling.anchors import AnchorGeneratorSSD
from ppdet.modeling.layers.norms import build_norm
from ppdet.modeling.losses.ssd_loss import SSDLoss

__all__ = ["SSDHead", "SepConv"]


class SepConv(nn.Layer):
    """SSDLite predictor: ``dw_conv`` (k x k depthwise) -> ``bn`` -> ReLU6 -> ``pw_conv`` (1x1).

    forward(x [B, in_channels, H, W]) -> [B, out_channels, H, W] (stride 1, 'same' padding).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, conv_decay: float = 0.0
    ):
        super().__init__()
        attr = ParamAttr(regularizer=L2Decay(conv_decay))
        self.dw_conv = nn.Conv2D(
            in_channels,
            in_channels,
            kernel_size,
            padding=(kernel_size - 1) // 2,
            groups=in_channels,
            weight_attr=attr,
            bias_attr=False,
        )
        self.bn = build_norm(in_channels, "bn")
        self.pw_conv = nn.Conv2D(
            in_channels,
            out_channels,
            1,
            weight_attr=ParamAttr(regularizer=L2Decay(conv_decay)),
            bias_attr=False,
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pw_conv(F.relu6(self.bn(self.dw_conv(x))))


def _flatten(x: paddle.Tensor, k: int) -> paddle.Tensor:
    """[B, P * k, H, W] (channel p * k + j) -> [B, H * W * P, k], row (y * W + x) * P + p."""
    return x.transpose([0, 2, 3, 1]).reshape([x.shape[0], -1, k])


@register("head")
class SSDHead(nn.Layer):
    """SSD / SSDLite head (module docstring: naming, layout).

    forward(feats) with feats[i]: [B, in_channels[i], H_i, W_i] -> (box_deltas [B, N, 4],
    cls_logits [B, N, C + 1]); ``priors(feats, image)`` -> [N, 4] x1y1x2y2 fractions of the
    input image, N = sum_i H_i W_i P_i.

    Args (the config keys of PaddleDetection's SSDHead):
        num_classes: foreground classes C (a background logit is added, last).
        in_channels: channels of the backbone maps (filled from the backbone).
        anchor_generator: keyword arguments of ``AnchorGeneratorSSD``.
        kernel_size, padding: the plain predictor convs (ignored with ``use_sepconv``).
        use_sepconv: SSDLite's separable predictors.
        conv_decay: L2 decay on the separable convs' weights.
        loss: ``SSDLoss``.
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        num_classes: int = 80,
        in_channels: Sequence[int] = (512, 1024, 512, 256, 256, 256),
        anchor_generator: dict | None = None,
        kernel_size: int = 3,
        padding: int = 1,
        use_sepconv: bool = False,
        conv_decay: float = 0.0,
        loss: nn.Layer | None = None,
    ):
        super().__init__()
        spec = dict(anchor_generator or {})
        spec.pop("name", None)
        try:
            self.anchor_generator = AnchorGeneratorSSD(**spec)
        except TypeError as e:
            raise ValueError(f"SSDHead.anchor_generator: {e}") from None
        num_priors = self.anchor_generator.num_priors
        if len(in_channels) != len(num_priors):
            raise ValueError(
                f"SSDHead: the backbone gives {len(in_channels)} maps but the anchor generator "
                f"has {len(num_priors)} levels; make feature_maps and steps the same length"
            )
        self.num_classes = num_classes
        self.in_channels = list(in_channels)
        self.loss = SSDLoss() if loss is None else loss
        self.box_convs: list[nn.Layer] = []
        self.score_convs: list[nn.Layer] = []
        for i, (ch, p) in enumerate(zip(self.in_channels, num_priors)):
            if use_sepconv:
                box = SepConv(ch, p * 4, conv_decay=conv_decay)
                score = SepConv(ch, p * (num_classes + 1), conv_decay=conv_decay)
            else:
                box = nn.Conv2D(ch, p * 4, kernel_size, padding=padding)
                score = nn.Conv2D(ch, p * (num_classes + 1), kernel_size, padding=padding)
            self.box_convs.append(self.add_sublayer(f"boxes{i}", box))
            self.score_convs.append(self.add_sublayer(f"scores{i}", score))

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> SSDHead:
        args = dict(args)
        if "loss" in args:
            args["loss"] = build(args["loss"])
        return cls(**args)

    def forward(self, feats: Sequence[paddle.Tensor]) -> tuple[paddle.Tensor, paddle.Tensor]:
        if len(feats) != len(self.box_convs):
            raise ValueError(
                f"SSDHead: got {len(feats)} feature maps, configured for {len(self.box_convs)}"
            )
        boxes, scores = [], []
        for x, box_conv, score_conv in zip(feats, self.box_convs, self.score_convs):
            boxes.append(_flatten(box_conv(x), 4))
            scores.append(_flatten(score_conv(x), self.num_classes + 1))
        return paddle.concat(boxes, axis=1), paddle.concat(scores, axis=1)

    def priors(self, feats: Sequence[paddle.Tensor], image: paddle.Tensor) -> paddle.Tensor:
        """[N, 4] priors of all levels, fractions of the input image."""
        return paddle.concat(self.anchor_generator(feats, image), axis=0)

    def get_loss(
        self,
        outputs: tuple[paddle.Tensor, paddle.Tensor],
        priors: paddle.Tensor,
        batch: dict[str, paddle.Tensor],
    ) -> dict[str, paddle.Tensor]:
        """Loss dict for ``gt_bbox`` [B, M, 4] in input pixels, ``gt_class`` [B, M, 1] and
        ``pad_gt_mask`` [B, M, 1] (rows with mask 0 are padding)."""
        box_deltas, cls_logits = outputs
        h, w = batch["image"].shape[2:]
        scale = paddle.to_tensor([w, h, w, h], dtype="float32")
        gt_bbox = batch["gt_bbox"].astype("float32") / scale  # fractions of the input image
        if "pad_gt_mask" in batch:
            mask = batch["pad_gt_mask"][..., 0] > 0
        else:
            mask = paddle.ones(gt_bbox.shape[:2], "bool")
        return self.loss(box_deltas, cls_logits, priors, gt_bbox, batch["gt_class"], mask)
