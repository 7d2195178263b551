"""Cascade R-CNN (Cai & Vasconcelos 2018): Faster R-CNN with a three-stage ``CascadeHead``."""

from __future__ import annotations

import paddle

from ppdet.config.registry import register
from ppdet.modeling.architectures.faster_rcnn import FasterRCNN, gt_lists
from ppdet.modeling.postprocess.rcnn import rcnn_post_process

__all__ = ["CascadeRCNN"]


@register("architecture")
class CascadeRCNN(FasterRCNN):
    """Cascade R-CNN detector (FPN); built like ``FasterRCNN`` with ``bbox_head: CascadeHead``.

    ``model.train()``: forward(batch) -> {"loss", "loss_rpn_cls", "loss_rpn_reg",
    "loss_bbox_cls_stage{0,1,2}", "loss_bbox_reg_stage{0,1,2}"} (stage losses already
    weighted). ``model.eval()``: {"bbox": [N, 6], "bbox_num": [B]} as ``FasterRCNN``, from
    the mean class probabilities of the stages and the last stage's boxes.
    """

    def forward(self, batch: dict[str, paddle.Tensor]) -> dict[str, paddle.Tensor]:
        feats = self.backbone(batch["image"])
        if self.neck is not None:
            feats = self.neck(feats)  # FPN: P2-P6
        im_shape = batch["im_shape"]
        if self.training:
            gt = gt_lists(batch)
            rois, rois_num, losses = self.rpn_head(feats, {"im_shape": im_shape, "gt_boxes": gt[0]})
            losses.update(self.bbox_head(feats, rois, rois_num, im_shape, gt))
            total = paddle.add_n([v.reshape([]) for v in losses.values()])
            return {"loss": total, **losses}
        rois, rois_num, _ = self.rpn_head(feats, {"im_shape": im_shape})
        preds, rois, rois_num = self.bbox_head(feats, rois, rois_num, im_shape)
        bbox, bbox_num = rcnn_post_process(
            preds,
            rois,
            rois_num,
            im_shape,
            batch["scale_factor"],
            self.bbox_post_process.decode,
            self.bbox_post_process.nms,
        )
        return {"bbox": bbox, "bbox_num": bbox_num}
