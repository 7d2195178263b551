"""YOLOv3 head: one 1x1 conv per pyramid level predicting, for each of its anchors,
(tx, ty, tw, th, objectness, class logits...)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import paddle
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal

from ppdet.config.registry import register
from ppdet.modeling.losses.yolo_loss import YOLOv3Loss

__all__ = ["COCO_ANCHORS", "COCO_ANCHOR_MASKS", "YOLOv3Head"]

# YOLOv3's k-means anchors on COCO, [w, h] in pixels of a 416/608 input
COCO_ANCHORS = (
    (10, 13), (16, 30), (33, 23),
    (30, 61), (62, 45), (59, 119),
    (116, 90), (156, 198), (373, 326),
)  # fmt: skip
COCO_ANCHOR_MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))  # level 0 (stride 32) has the largest


@register("head")
class YOLOv3Head(nn.Layer):
    """YOLOv3 detection head.

    forward(feats) with feats[i]: [B, in_channels[i], H_i, W_i] (deepest first) -> outputs[i]:
    [B, A_i * (5 + num_classes), H_i, W_i], A_i = len(anchor_masks[i]), anchor-major: channel
    a * (5 + C) + k holds field k = (tx, ty, tw, th, obj, cls_0, ...) of anchor a.

    Args:
        anchors: all anchors [K, 2] as [w, h] pixels of the network input.
        anchor_masks: per level, the indices into ``anchors`` it predicts.
        num_classes: foreground classes.
        loss: the loss layer (``YOLOv3Loss``); None builds one with its defaults.
        in_channels: channels of the neck outputs, deepest first.
        obj_prior: if > 0, objectness starts at this probability (bias init); 0 keeps
            PaddleDetection's zero bias.
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        anchors: Sequence[Sequence[float]] = COCO_ANCHORS,
        anchor_masks: Sequence[Sequence[int]] = COCO_ANCHOR_MASKS,
        num_classes: int = 80,
        loss: nn.Layer | None = None,
        in_channels: Sequence[int] = (1024, 512, 256),
        obj_prior: float = 0.0,
    ):
        super().__init__()
        if len(in_channels) != len(anchor_masks):
            raise ValueError(
                f"{len(in_channels)} input levels but {len(anchor_masks)} anchor masks"
            )
        if any(not 0 <= k < len(anchors) for mask in anchor_masks for k in mask):
            raise ValueError(
                f"anchor_masks {anchor_masks} index outside the {len(anchors)} anchors"
            )
        self.anchors = [[float(w), float(h)] for w, h in anchors]
        self.anchor_masks = [list(mask) for mask in anchor_masks]
        self.num_classes = num_classes
        self.loss = YOLOv3Loss() if loss is None else loss

        self.yolo_outputs: list[nn.Conv2D] = []
        for i, (channels, mask) in enumerate(zip(in_channels, self.anchor_masks)):
            conv = nn.Conv2D(
                channels,
                len(mask) * (5 + num_classes),
                1,
                weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
                bias_attr=ParamAttr(initializer=Constant(0.0)),
            )
            if obj_prior > 0:
                self._init_objectness(conv, len(mask), obj_prior)
            self.yolo_outputs.append(self.add_sublayer(f"yolo_output.{i}", conv))

    def _init_objectness(self, conv: nn.Conv2D, num_anchors: int, prior: float) -> None:
        """Start every objectness logit at log(p / (1 - p)): training from scratch then does
        not begin with a huge loss from all background cells predicting 0.5."""
        bias = conv.bias.numpy()  # [A * (5 + C)], anchor-major
        step = 5 + self.num_classes
        bias[[a * step + 4 for a in range(num_anchors)]] = math.log(prior / (1 - prior))
        conv.bias.set_value(bias)

    @property
    def mask_anchors(self) -> list[list[list[float]]]:
        """Per level, its anchors [A_i, 2] as [w, h] pixels."""
        return [[self.anchors[k] for k in mask] for mask in self.anchor_masks]

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        if len(feats) != len(self.yolo_outputs):
            raise ValueError(f"YOLOv3Head expects {len(self.yolo_outputs)} maps, got {len(feats)}")
        return [conv(x) for conv, x in zip(self.yolo_outputs, feats)]

    def get_loss(
        self, outputs: list[paddle.Tensor], batch: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        """Named losses for ``outputs`` (from forward) against the batch's ground truth."""
        return self.loss(outputs, batch, self.anchors, self.anchor_masks)
