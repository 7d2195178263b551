"""Mask R-CNN (He et al. 2017): Faster R-CNN plus a mask head on the foreground RoIs
(training) or on the final detections (eval)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.architectures.faster_rcnn import FasterRCNN, gt_lists
from ppdet.modeling.postprocess.mask import MaskPostProcess
from ppdet.modeling.postprocess.yolo import original_size

__all__ = ["MaskRCNN"]


@register("architecture")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN, FPN or C4 (``MaskHead.share_bbox_feat``): a FasterRCNN plus ``mask_head``
    and ``mask_post_process``.

    ``model.train()``: forward(batch) -> {"loss", "loss_rpn_cls", "loss_rpn_reg",
    "loss_bbox_cls", "loss_bbox_reg", "loss_mask"}; the batch also needs ``gt_poly`` (per image
    a list of objects, each a list of [2K] float32 polygons in input pixels, in the order of
    the real ``gt_bbox`` rows).
    ``model.eval()``: forward({"image", "im_shape", "scale_factor"}) -> {"bbox" [N, 6],
    "bbox_num" [B] as FasterRCNN, "mask": list of B uint8 arrays [n_b, H_b, W_b] (0/1,
    original-image pixels, H_b, W_b = round(im_shape / scale_factor), rows aligned with the
    image's bbox rows)}.

    Parameter prefixes ``backbone.``, ``neck.``, ``rpn_head.``, ``bbox_head.``, ``mask_head.``
    match PaddleDetection 2.x.
    """

    def __init__(
        self,
        backbone: nn.Layer,
        rpn_head: nn.Layer,
        bbox_head: nn.Layer,
        mask_head: nn.Layer,
        bbox_post_process: nn.Layer,
        mask_post_process: Any = None,
        neck: nn.Layer | None = None,
    ):
        super().__init__(backbone, rpn_head, bbox_head, bbox_post_process, neck)
        self.mask_head = mask_head
        self.mask_post_process = mask_post_process or MaskPostProcess()

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> MaskRCNN:
        parts, channels, scales = cls.build_parts(args, build)
        mask_head = build(
            args.get("mask_head", "MaskHead"),
            in_channels=channels,
            spatial_scales=scales,
            bbox_channel=parts["bbox_head"].head.out_channel,
        )
        post = build(args.get("mask_post_process", "MaskPostProcess"))
        return cls(mask_head=mask_head, mask_post_process=post, **parts)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        feats = self.features(batch["image"])
        if self.training:
            return self.train_losses(feats, batch)
        bbox, bbox_num = self.detect(feats, batch)
        masks = self.predict_masks(feats, bbox, bbox_num, batch)
        return {"bbox": bbox, "bbox_num": bbox_num, "mask": masks}

    def train_losses(self, feats: list[paddle.Tensor], batch: dict[str, Any]) -> dict[str, Any]:
        """RPN, box and mask losses; the box head's sample (and, C4, its res5 features) feed
        the mask head."""
        if "gt_poly" not in batch:
            raise KeyError(
                "MaskRCNN: the training batch has no gt_poly; set load_segm: true on TrainDataset"
            )
        gt_boxes, gt_classes = gt_lists(batch)
        rpn_in = {"im_shape": batch["im_shape"], "gt_boxes": gt_boxes}
        rois, rois_num, losses = self.rpn_head(feats, rpn_in)
        head = self.bbox_head
        rois, rois_num, labels, matched = head.bbox_assigner(rois, gt_boxes, gt_classes)
        all_rois = paddle.concat(list(rois))  # [R, 4]
        bbox_feat = head.head(head.roi_extractor(feats, all_rois, rois_num))  # [R, F(, h, w)]
        x = bbox_feat
        if head.with_pool:
            x = F.adaptive_avg_pool2d(x, 1).flatten(start_axis=1)  # [R, F]
        losses.update(
            head.get_loss(
                head.bbox_score(x),
                head.bbox_delta(x),
                all_rois,
                paddle.concat(labels),
                paddle.concat(matched),
            )
        )
        losses.update(self.mask_head(feats, rois, labels, gt_boxes, batch["gt_poly"], bbox_feat))
        total = paddle.add_n([v.reshape([]) for v in losses.values()])
        return {"loss": total, **losses}

    def predict_masks(
        self,
        feats: list[paddle.Tensor],
        bbox: paddle.Tensor,
        bbox_num: paddle.Tensor,
        batch: dict[str, Any],
    ) -> list[np.ndarray]:
        """Masks of the detections, pasted into each original image (class docstring)."""
        sizes = original_size(batch["im_shape"], batch["scale_factor"]).numpy()  # [B, 2]
        nums = bbox_num.numpy().astype("int64").tolist()
        if bbox.shape[0] == 0:
            return [np.zeros((0, int(h), int(w)), "uint8") for h, w in sizes]
        image = paddle.repeat_interleave(paddle.arange(len(nums)), bbox_num.astype("int64"))
        scale = paddle.gather(batch["scale_factor"].astype("float32"), image)  # [N, 2] (h, w)
        # the detections back in input pixels (the mask head's RoIs); 2.x uses the NMS boxes
        # before rescaling, which differ only by float rounding / the original-size clip
        boxes = bbox[:, 2:] * paddle.concat([scale[:, 1:2], scale[:, 0:1]] * 2, axis=1)
        feat_func = self.bbox_head.head if self.mask_head.share_bbox_feat else None
        probs = self.mask_head.predict(
            feats, boxes, bbox_num, bbox[:, 0], feat_func
        ).numpy()  # [N, M, M]
        det = bbox.numpy()
        out, start = [], 0
        for n, (h, w) in zip(nums, sizes):
            rows = slice(start, start + n)
            out.append(self.mask_post_process(probs[rows], det[rows, 2:], int(h), int(w)))
            start += n
        return out
