"""RetinaNet (Lin et al. 2017): backbone -> FPN (P3-P7) -> RetinaHead -> decode + NMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register

__all__ = ["RetinaNet"]


@register("architecture")
class RetinaNet(nn.Layer):
    """RetinaNet detector; a thin composition.

    ``model.train()``: forward(batch) -> {"loss", "loss_cls", "loss_reg"}; the batch needs
    ``image`` [B, 3, H, W], ``gt_bbox`` [B, M, 4], ``gt_class`` [B, M, 1] and ``pad_gt_mask``
    [B, M, 1] (PadGT).
    ``model.eval()``: forward({"image", "im_shape", "scale_factor"}) -> {"bbox": [N, 6]
    float32 (class, score, x1, y1, x2, y2 original-image pixels), "bbox_num": [B] int32}.

    Parameter prefixes ``backbone.``, ``neck.``, ``head.`` match PaddleDetection 2.x.
    """

    def __init__(self, backbone: nn.Layer, neck: nn.Layer, head: nn.Layer):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> RetinaNet:
        """Build the parts, passing the channel counts downstream."""
        backbone = build(args.get("backbone", "ResNet"))
        neck = build(args.get("neck", "FPN"), in_channels=backbone.out_channels)
        head = build(args.get("head", "RetinaHead"), in_channels=neck.out_channels)
        return cls(backbone, neck, head)

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, paddle.Tensor]:
        feats = self.neck(self.backbone(batch["image"]))  # P3-P7, shallowest first
        outputs = self.head(feats)
        if self.training:
            return self.head.get_loss(outputs, batch)
        bbox, bbox_num = self.head.post_process(outputs, batch["im_shape"], batch["scale_factor"])
        return {"bbox": bbox, "bbox_num": bbox_num}
