"""YOLOv3 (Redmon & Farhadi, 2018): backbone -> YOLOv3FPN -> YOLOv3Head -> post-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.architectures.base import Detector

__all__ = ["YOLOv3"]


@register("architecture")
class YOLOv3(Detector):
    """YOLOv3 detector; a thin composition (``Detector``: forward / loss / postprocess).

    - ``forward(batch)`` (``image`` [B, 3, H, W]) -> raw ``{"outputs": [B, A_i*(5+C), H_i,
      W_i] per level, deepest first}``;
    - ``loss(raw, batch)`` -> {"loss", "loss_xy", "loss_wh", "loss_obj", "loss_cls"}; the batch
      needs ``gt_bbox`` [B, M, 4], ``gt_class`` [B, M, 1], ``gt_score``, ``pad_gt_mask`` [B, M, 1];
    - ``postprocess(raw, image_meta)`` -> {"bbox": [N, 6], "bbox_num": [B]} through
      ``post_process`` (``BBoxPostProcess``: ``YOLOBox`` with the head's anchors, then NMS).

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
        decode = getattr(post_process, "decode", None)
        if not hasattr(decode, "set_anchors"):
            raise ValueError(
                f"YOLOv3: post_process.decode must be YOLOBox, got {type(decode).__name__}"
            )
        decode.set_anchors(yolo_head.mask_anchors)

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> YOLOv3:
        """Build the parts, passing the channel counts downstream."""
        backbone = build(args.get("backbone", "DarkNet"))
        neck = build(args.get("neck", "YOLOv3FPN"), in_channels=backbone.out_channels)
        yolo_head = build(args.get("yolo_head", "YOLOv3Head"), in_channels=neck.out_channels)
        post_process = build(args.get("post_process", "BBoxPostProcess"))
        return cls(backbone, neck, yolo_head, post_process)

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, list[paddle.Tensor]]:
        feats = self.backbone(batch["image"])  # shallowest first
        return {"outputs": self.yolo_head(self.neck(feats))}  # deepest first

    def loss(
        self, raw: dict[str, list[paddle.Tensor]], batch: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        return self.yolo_head.get_loss(raw["outputs"], batch)

    def postprocess(
        self, raw: dict[str, list[paddle.Tensor]], image_meta: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        bbox, bbox_num = self.post_process(raw, image_meta)
        return {"bbox": bbox, "bbox_num": bbox_num}
