"""YOLOv3 (Redmon & Farhadi, 2018): backbone -> YOLOv3FPN -> YOLOv3Head -> post-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register

__all__ = ["YOLOv3"]


@register("architecture")
class YOLOv3(nn.Layer):
    """YOLOv3 detector; a thin composition.

    ``model.train()``: forward(batch) -> {"loss", "loss_xy", "loss_wh", "loss_obj",
    "loss_cls"}; the batch needs ``image`` [B, 3, H, W] and the ground truth fields
    ``gt_bbox`` [B, M, 4], ``gt_class`` [B, M, 1], ``gt_score``, ``pad_gt_mask`` [B, M, 1].
    ``model.eval()``: forward({"image", "im_shape", "scale_factor"}) -> {"bbox": [N, 6]
    float32 (class, score, x1, y1, x2, y2 original-image pixels), "bbox_num": [B] int32}.

    Parameter prefixes ``backbone.``, ``neck.``, ``yolo_head.`` match PaddleDetection 2.x.
    """

    def __init__(
        self, backbone: nn.Layer, neck: nn.Layer, yolo_head: nn.Layer, post_process: nn.Layer
    ):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.yolo_head = yolo_head
        self.post_process = post_process

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> YOLOv3:
        """Build the parts, passing the channel counts downstream."""
        backbone = build(args.get("backbone", "DarkNet"))
        neck = build(args.get("neck", "YOLOv3FPN"), in_channels=backbone.out_channels)
        yolo_head = build(args.get("yolo_head", "YOLOv3Head"), in_channels=neck.out_channels)
        post_process = build(args.get("post_process", "BBoxPostProcess"))
        return cls(backbone, neck, yolo_head, post_process)

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, paddle.Tensor]:
        feats = self.backbone(batch["image"])  # shallowest first
        outputs = self.yolo_head(self.neck(feats))  # deepest first
        if self.training:
            return self.yolo_head.get_loss(outputs, batch)
        bbox, bbox_num = self.post_process(
            outputs, self.yolo_head.mask_anchors, batch["im_shape"], batch["scale_factor"]
        )
        return {"bbox": bbox, "bbox_num": bbox_num}
