"""RetinaNet (Lin et al. 2017): backbone -> FPN (P3-P7) -> RetinaHead -> decode + NMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.architectures.base import Detector
from ppdet.modeling.conventions import model_conventions
from ppdet.modeling.postprocess import BBoxPostProcess, RetinaBox

__all__ = ["RetinaNet"]


@register("architecture")
class RetinaNet(Detector):
    """RetinaNet detector; a thin composition (``Detector``: forward / loss / postprocess).

    - ``forward(batch)`` (``image`` [B, 3, H, W]) -> raw ``{"cls_logits", "bbox_deltas",
      "anchors", "input_size"}``, per level [B, A*C, H_i, W_i], [B, 4A, H_i, W_i] and
      [H_i*W_i*A, 4] input pixels (P3-P7), and (H, W) of the (padded) input [2] int;
    - ``loss(raw, batch)`` -> {"loss", "loss_cls", "loss_reg"}; the batch needs ``gt_bbox``
      [B, M, 4], ``gt_class`` [B, M, 1] and ``pad_gt_mask`` [B, M, 1] (PadGT);
    - ``postprocess(raw, image_meta)`` -> {"bbox": [N, 6], "bbox_num": [B]} through
      ``post_process``: ``BBoxPostProcess(RetinaBox, head.nms)`` built from the head's
      ``num_classes``, ``nms_pre``, ``weights`` and ``nms`` (2.x keeps those in RetinaHead),
      unless ``post_process`` names another (v0.1: ``RetinaNetDetectionOutput``).

    Fluid-era conventions of its plain parts are declared here (``conventions``: the head's
    anchor generator's), the layers declare their own (``ppdet.modeling.conventions``); parts
    that disagree (the head encoding with +1 widths, the post-process decoding without) are a
    ``ConventionError`` when the model is built.

    Parameter prefixes ``backbone.``, ``neck.``, ``head.`` match PaddleDetection 2.x.
    """

    def __init__(
        self,
        backbone: nn.Layer,
        neck: nn.Layer,
        head: nn.Layer,
        post_process: nn.Layer | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        if post_process is None:
            decode = RetinaBox(head.num_classes, head.nms_pre, head.weights)
            post_process = BBoxPostProcess(decode, head.nms)
        self.post_process = post_process
        self.conventions = dict(getattr(head.anchor_generator, "conventions", {}))
        model_conventions(self)  # parts that disagree (e.g. +1 coding): a one-line error now

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> RetinaNet:
        """Build the parts, passing the channel counts downstream."""
        backbone = build(args.get("backbone", "ResNet"))
        neck = build(args.get("neck", "FPN"), in_channels=backbone.out_channels)
        head = build(args.get("head", "RetinaHead"), in_channels=neck.out_channels)
        post_process = build(args["post_process"]) if args.get("post_process") else None
        return cls(backbone, neck, head, post_process)

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, list[paddle.Tensor]]:
        image = batch["image"]
        feats = self.neck(self.backbone(image))  # P3-P7, shallowest first
        cls_logits, bbox_deltas = self.head(feats)
        anchors = self.head.anchors(cls_logits)
        return {
            "cls_logits": cls_logits,
            "bbox_deltas": bbox_deltas,
            "anchors": anchors,
            "input_size": paddle.shape(image)[2:4],  # [2] (H, W) padded
        }

    def loss(
        self, raw: dict[str, list[paddle.Tensor]], batch: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        return self.head.get_loss(raw, batch)

    def postprocess(
        self, raw: dict[str, list[paddle.Tensor]], image_meta: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        bbox, bbox_num = self.post_process(raw, image_meta)
        return {"bbox": bbox, "bbox_num": bbox_num}
