"""SSD (Liu et al. 2016) and SSDLite: backbone maps -> SSDHead -> SSDBox decode + NMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register

__all__ = ["SSD"]


@register("architecture")
class SSD(nn.Layer):
    """SSD detector; a thin composition.

    ``model.train()``: forward(batch) -> {"loss", "loss_conf", "loss_loc"}; the batch needs
    ``image`` [B, 3, H, W], ``gt_bbox`` [B, M, 4] (input pixels), ``gt_class`` [B, M, 1] and
    ``pad_gt_mask`` [B, M, 1] (PadGT).
    ``model.eval()``: forward({"image", "im_shape", "scale_factor"}) -> {"bbox": [N, 6]
    float32 (class, score, x1, y1, x2, y2 original-image pixels), "bbox_num": [B] int32}.

    Parameter prefixes ``backbone.`` and ``ssd_head.`` match PaddleDetection 2.x; the
    post-process (``BBoxPostProcess`` with ``SSDBox`` and ``MultiClassNMS``) has none.
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
        outputs = self.ssd_head(feats)
        priors = self.ssd_head.priors(feats, image)
        if self.training:
            return self.ssd_head.get_loss(outputs, priors, batch)
        bbox, bbox_num = self.post_process(
            outputs, priors, batch["im_shape"], batch["scale_factor"]
        )
        return {"bbox": bbox, "bbox_num": bbox_num}
