"""Faster R-CNN (Ren et al. 2015): backbone [-> FPN] -> RPN -> RoIAlign -> box head."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.postprocess.rcnn import rcnn_post_process

__all__ = ["FasterRCNN", "gt_lists"]


def gt_lists(batch: dict[str, paddle.Tensor]) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
    """Padded ``gt_bbox`` [B, M, 4] / ``gt_class`` [B, M, 1] -> per-image lists of the real
    boxes [M_b, 4] and classes [M_b] int32 (rows with ``pad_gt_mask`` 0 are padding; without
    the mask, all-zero boxes are)."""
    gt_bbox, gt_class = batch["gt_bbox"], batch["gt_class"]
    if "pad_gt_mask" in batch:
        mask = batch["pad_gt_mask"][..., 0] > 0  # [B, M]
    else:
        mask = gt_bbox.abs().sum(-1) > 0
    boxes, classes = [], []
    for b in range(gt_bbox.shape[0]):
        keep = paddle.nonzero(mask[b]).flatten()
        if keep.shape[0]:
            boxes.append(paddle.gather(gt_bbox[b], keep).astype("float32"))
            classes.append(paddle.gather(gt_class[b, :, 0], keep).astype("int32"))
        else:
            boxes.append(paddle.zeros([0, 4], "float32"))
            classes.append(paddle.zeros([0], "int32"))
    return boxes, classes


@register("architecture")
class FasterRCNN(nn.Layer):
    """Faster R-CNN detector, FPN or C4; a thin composition.

    ``model.train()``: forward(batch) -> {"loss", "loss_rpn_cls", "loss_rpn_reg",
    "loss_bbox_cls", "loss_bbox_reg"}; the batch needs ``image``, ``im_shape``, ``gt_bbox``
    [B, M, 4], ``gt_class`` [B, M, 1] (and ``pad_gt_mask`` from PadGT).
    ``model.eval()``: forward({"image", "im_shape", "scale_factor"}) -> {"bbox": [N, 6]
    float32 (class, score, x1, y1, x2, y2 original-image pixels), "bbox_num": [B] int32}.

    Parameter prefixes ``backbone.``, ``neck.``, ``rpn_head.``, ``bbox_head.`` match
    PaddleDetection 2.x. ``bbox_post_process`` is a ``BBoxPostProcess`` whose ``decode``
    (``RCNNBox``) and ``nms`` (``MultiClassNMS``) settings are used by
    ``rcnn_post_process``.
    """

    def __init__(
        self,
        backbone: nn.Layer,
        rpn_head: nn.Layer,
        bbox_head: nn.Layer,
        bbox_post_process: nn.Layer,
        neck: nn.Layer | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.rpn_head = rpn_head
        self.bbox_head = bbox_head
        self.bbox_post_process = bbox_post_process

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> FasterRCNN:
        """Build the parts, passing channel counts and strides downstream."""
        parts, _, _ = cls.build_parts(args, build)
        return cls(**parts)

    @staticmethod
    def build_parts(
        args: dict[str, Any], build: Callable[..., Any]
    ) -> tuple[dict[str, nn.Layer], list[int], list[float]]:
        """(backbone/neck/rpn_head/bbox_head/bbox_post_process, channels and spatial scales of
        the maps the heads see)."""
        backbone = build(args.get("backbone", "ResNet"))
        neck = None
        channels, scales = backbone.out_channels, [1.0 / s for s in backbone.out_strides]
        if args.get("neck"):
            neck = build(args["neck"], in_channels=backbone.out_channels)
            channels, scales = neck.out_channels, neck.spatial_scales
        rpn_head = build(args.get("rpn_head", "RPNHead"), in_channels=channels)
        bbox_head = build(
            args.get("bbox_head", "BBoxHead"), in_channels=channels, spatial_scales=scales
        )
        post = build(args.get("bbox_post_process", "BBoxPostProcess"))
        parts = dict(
            backbone=backbone,
            rpn_head=rpn_head,
            bbox_head=bbox_head,
            bbox_post_process=post,
            neck=neck,
        )
        return parts, list(channels), list(scales)

    def features(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        """image [B, 3, H, W] -> the maps the heads see (FPN: P2-P6; C4: [C4])."""
        feats = self.backbone(image)
        return self.neck(feats) if self.neck is not None else feats

    def detect(
        self, feats: list[paddle.Tensor], batch: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Eval path: (bbox [N, 6] original-image pixels, bbox_num [B] int32)."""
        rois, rois_num, _ = self.rpn_head(feats, {"im_shape": batch["im_shape"]})
        preds = self.bbox_head(feats, rois, rois_num)
        return rcnn_post_process(
            preds,
            paddle.concat(rois),
            rois_num,
            batch["im_shape"],
            batch["scale_factor"],
            self.bbox_post_process.decode,
            self.bbox_post_process.nms,
        )

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, paddle.Tensor]:
        feats = self.features(batch["image"])
        if self.training:
            gt_boxes, gt_classes = gt_lists(batch)
            rpn_in = {"im_shape": batch["im_shape"], "gt_boxes": gt_boxes}
            rois, rois_num, losses = self.rpn_head(feats, rpn_in)
            losses.update(self.bbox_head(feats, rois, rois_num, (gt_boxes, gt_classes)))
            total = paddle.add_n([v.reshape([]) for v in losses.values()])
            return {"loss": total, **losses}
        bbox, bbox_num = self.detect(feats, batch)
        return {"bbox": bbox, "bbox_num": bbox_num}
