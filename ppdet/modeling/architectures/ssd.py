"""SSD (Liu et al. 2016) and SSDLite: backbone maps -> SSDHead -> SSDBox decode + NMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.architectures.base import Detector

__all__ = ["SSD"]


@register("architecture")
class SSD(Detector):
    """SSD detector; a thin composition (``Detector``: forward / loss / postprocess).

    - ``forward(batch)`` (``image`` [B, 3, H, W]) -> raw ``{"box_deltas": [B, N, 4],
      "cls_logits": [B, N, C + 1], "priors": [N, 4] fractions of the input image}``;
    - ``loss(raw, batch)`` -> {"loss", "loss_conf", "loss_loc"}; the batch needs ``gt_bbox``
      [B, M, 4] (input pixels), ``gt_class`` [B, M, 1] and ``pad_gt_mask`` [B, M, 1] (PadGT);
    - ``postprocess(raw, image_meta)`` -> {"bbox": [N, 6], "bbox_num": [B]} through
      ``post_process`` (``BBoxPostProcess``: ``SSDBox`` then NMS).

    Parameter prefixes ``backbone.`` and ``ssd_head.`` match PaddleDetection 2.x; the
    post-process has none.
    """

    def __init__(self, backbone: nn.Layer, ssd_head: nn.Layer, post_process: nn.Layer):
        super().__init__()
        self.backbone = backbone
        self.ssd_head = ssd_head
        self.post_process = post_process

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> SSD:
        """Build the parts, passing the backbone's channel counts to the head."""
        backbone = build(args.get("backbone", "MobileNet"))
        head = build(args.get("ssd_head", "SSDHead"), in_channels=backbone.out_channels)
        post_process = build(args.get("post_process", "BBoxPostProcess"))
        return cls(backbone, head, post_process)

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, paddle.Tensor]:
        image = batch["image"]
        feats = self.backbone(image)
        box_deltas, cls_logits = self.ssd_head(feats)
        priors = self.ssd_head.priors(feats, image)
        return {"box_deltas": box_deltas, "cls_logits": cls_logits, "priors": priors}

    def loss(
        self, raw: dict[str, paddle.Tensor], batch: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        outputs = (raw["box_deltas"], raw["cls_logits"])
        return self.ssd_head.get_loss(outputs, raw["priors"], batch)

    def postprocess(
        self, raw: dict[str, paddle.Tensor], image_meta: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        bbox, bbox_num = self.post_process(raw, image_meta)
        return {"bbox": bbox, "bbox_num": bbox_num}
