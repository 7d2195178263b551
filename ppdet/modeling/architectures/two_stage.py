"""The R-CNN family as one two-stage detector (detectron2's GeneralizedRCNN shape):
backbone [-> FPN] -> RPN proposals -> a RoI stage -> [a mask branch].

The RoI stage is a choice of head with one interface (``forward(feats, rois, rois_num,
im_shape, gt=None) -> raw``, ``get_loss(raw)``): ``BBoxHead`` (Faster / Mask R-CNN: TwoFCHead
for FPN, Res5Head for C4) or ``CascadeHead`` (three refining stages). The mask branch
(``MaskHead``) is optional and works with either: in training it learns from the RoI stage's
sample (its first stage's), in eval it runs on the final detections.

``FasterRCNN``, ``MaskRCNN`` and ``CascadeRCNN`` are the registered names the configs use
(PaddleDetection 2.x's sections and arguments); they are this one detector with other
defaults. Cascade Mask R-CNN is ``CascadeRCNN`` with a ``mask_head``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.architectures.base import Detector, with_total
from ppdet.modeling.heads.cascade_head import CascadeHead
from ppdet.modeling.postprocess.bbox import image_of_rows, original_size
from ppdet.modeling.postprocess.mask import MaskPostProcess

__all__ = ["CascadeRCNN", "FasterRCNN", "MaskRCNN", "TwoStageDetector", "fluid_im_info", "gt_lists"]


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
        boxes.append(paddle.gather(gt_bbox[b], keep).astype("float32"))
        classes.append(paddle.gather(gt_class[b, :, 0], keep).astype("int32"))
    return boxes, classes


def fluid_im_info(
    image: paddle.Tensor, im_shape: paddle.Tensor, scale_factor: paddle.Tensor | None
) -> paddle.Tensor:
    """PaddleDetection v0.1's ``im_info[:2]`` (the window its RPN clipped proposals to) of a
    batch: image [B, 3, H, W] (padded), im_shape [B, 2] (rounded resized h, w), scale_factor
    [B, 2] -> [B, 2] float. A padded batch (some image smaller than the input) gives the padded
    (H, W), as v0.1's ``PadBatch(use_padded_im_info)``; an unpadded one gives each image's
    unrounded resized size, original size * scale (v0.1's ``ResizeImage``; e.g. 451 x 2.667 =
    1202.67 where im_shape holds 1203). Without scale_factor: im_shape."""
    padded = paddle.shape(image)[2:].astype(im_shape.dtype).unsqueeze(0).expand_as(im_shape)
    unpadded = im_shape
    if scale_factor is not None:
        scale = scale_factor.astype(im_shape.dtype)
        unpadded = original_size(im_shape, scale_factor).astype(im_shape.dtype) * scale
    return paddle.where((padded > im_shape).any(), padded, unpadded)


class TwoStageDetector(Detector):
    """Two-stage detector (module docstring); ``Detector``'s three parts:

    - ``forward(batch)`` -> raw {"rpn": ``RPNHead`` raw (proposals ``rois`` [R, 4] /
      ``rois_num`` [B], objectness and deltas per level, anchors), "roi": the RoI stage's raw
      (eval: what ``RCNNBox`` decodes), and in training "targets" (the real gt boxes and
      classes per image) and "mask" (the mask head's logits of the foreground RoIs), in eval
      with a mask head "feats" (the maps it reads)}. Training reads ``gt_bbox`` [B, M, 4],
      ``gt_class`` [B, M, 1], ``pad_gt_mask`` [B, M, 1] (and ``gt_poly`` with a mask head) to
      sample RoIs inside the forward.
    - ``loss(raw, batch)`` -> {"loss", "loss_rpn_cls", "loss_rpn_reg", the RoI stage's
      ("loss_bbox_cls", "loss_bbox_reg" or per cascade stage "..._stage{k}"), "loss_mask"}.
    - ``postprocess(raw, image_meta)`` -> {"bbox": [N, 6], "bbox_num": [B]} from
      ``bbox_post_process`` (``BBoxPostProcess``: ``RCNNBox`` + per-class NMS, original-image
      pixels); with a mask head also "mask" [N, H_max, W_max] uint8: the mask head runs on the
      detections (back in input pixels) and ``mask_post_process`` pastes its [N, M, M]
      probabilities into the images. The mask head needs the NMS output, so with masks the
      post-process includes that network step (as in 2.x).

    Parameter prefixes ``backbone.``, ``neck.``, ``rpn_head.``, ``bbox_head.``,
    ``mask_head.`` match PaddleDetection 2.x.
    """

    default_bbox_head = "BBoxHead"
    default_mask_head: str | None = None

    def __init__(
        self,
        backbone: nn.Layer,
        rpn_head: nn.Layer,
        bbox_head: nn.Layer,
        bbox_post_process: nn.Layer,
        neck: nn.Layer | None = None,
        mask_head: nn.Layer | None = None,
        mask_post_process: nn.Layer | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.rpn_head = rpn_head
        self.bbox_head = bbox_head
        self.bbox_post_process = bbox_post_process
        self.mask_head = mask_head
        self.mask_post_process = None
        if mask_head is not None:
            if mask_head.share_bbox_feat and isinstance(bbox_head, CascadeHead):
                raise ValueError(
                    "MaskHead.share_bbox_feat (C4) needs a BBoxHead; a CascadeHead's stage "
                    "features are flat vectors: set share_bbox_feat: false"
                )
            self.mask_post_process = mask_post_process or MaskPostProcess()

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> TwoStageDetector:
        """Build the parts, passing channel counts and strides downstream."""
        backbone = build(args.get("backbone", "ResNet"))
        neck = None
        channels, scales = backbone.out_channels, [1.0 / s for s in backbone.out_strides]
        if args.get("neck"):
            neck = build(args["neck"], in_channels=backbone.out_channels)
            channels, scales = neck.out_channels, neck.spatial_scales
        parts = dict(
            backbone=backbone,
            neck=neck,
            rpn_head=build(args.get("rpn_head", "RPNHead"), in_channels=channels),
            bbox_head=build(
                args.get("bbox_head", cls.default_bbox_head),
                in_channels=channels,
                spatial_scales=scales,
            ),
            bbox_post_process=build(args.get("bbox_post_process", "BBoxPostProcess")),
        )
        mask_spec = args.get("mask_head", cls.default_mask_head)
        if mask_spec:
            parts["mask_head"] = build(
                mask_spec,
                in_channels=channels,
                spatial_scales=scales,
                bbox_channel=parts["bbox_head"].head.out_channel,
            )
            parts["mask_post_process"] = build(args.get("mask_post_process", "MaskPostProcess"))
        return cls(**parts)

    def features(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        """image [B, 3, H, W] -> the maps the heads see (FPN: P2-P6; C4: [C4])."""
        feats = self.backbone(image)
        return self.neck(feats) if self.neck is not None else feats

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        feats = self.features(batch["image"])
        im_shape = batch["im_shape"]
        gt = None
        if self.training:
            if self.mask_head is not None and "gt_poly" not in batch:
                raise KeyError(
                    f"{type(self).__name__}: the training batch has no gt_poly; set "
                    "load_segm: true on TrainDataset"
                )
            gt = gt_lists(batch)
        im_info = fluid_im_info(batch["image"], im_shape, batch.get("scale_factor"))
        rpn = self.rpn_head(feats, im_shape, im_info)
        roi = self.bbox_head(feats, rpn["rois"], rpn["rois_num"], im_shape, gt)
        raw = {"rpn": rpn, "roi": roi}
        if gt is not None:
            raw["targets"] = {"gt_boxes": gt[0], "gt_classes": gt[1]}
        if self.mask_head is not None:
            if self.training:
                raw["mask"] = self.mask_head(feats, roi["sample"])
            else:
                raw["feats"] = feats
        return raw

    def loss(self, raw: dict[str, Any], batch: dict[str, Any]) -> dict[str, paddle.Tensor]:
        gt_boxes = raw["targets"]["gt_boxes"]
        losses = self.rpn_head.get_loss(raw["rpn"], gt_boxes)
        losses.update(self.bbox_head.get_loss(raw["roi"]))
        if self.mask_head is not None:
            losses.update(self.mask_head.get_loss(raw["mask"], gt_boxes, batch["gt_poly"]))
        return with_total(losses)

    def postprocess(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        bbox, bbox_num = self.bbox_post_process(raw["roi"], image_meta)
        out = {"bbox": bbox, "bbox_num": bbox_num}
        if self.mask_head is not None:
            out["mask"] = self.predict_masks(raw["feats"], bbox, bbox_num, image_meta)
        return out

    def predict_masks(
        self,
        feats: list[paddle.Tensor],
        bbox: paddle.Tensor,
        bbox_num: paddle.Tensor,
        image_meta: dict[str, paddle.Tensor],
    ) -> paddle.Tensor:
        """Masks of the detections bbox [N, 6] (original pixels) -> [N, H_max, W_max] uint8."""
        image = image_of_rows(bbox_num)  # [N]
        scale = paddle.gather(image_meta["scale_factor"].astype(bbox.dtype), image)  # [N, 2]
        # the detections back in input pixels (the mask head's RoIs); 2.x uses the NMS boxes
        # before rescaling, which differ only by float rounding / the original-size clip
        boxes = bbox[:, 2:] * paddle.concat([scale[:, 1:2], scale[:, 0:1]] * 2, axis=1)
        feat_func = self.bbox_head.head if self.mask_head.share_bbox_feat else None
        probs = self.mask_head.predict(feats, boxes, bbox_num, bbox[:, 0], feat_func)
        return self.mask_post_process(probs, bbox, bbox_num, image_meta)


@register("architecture")
class FasterRCNN(TwoStageDetector):
    """Faster R-CNN (Ren et al. 2015), FPN or C4: ``TwoStageDetector`` with a ``BBoxHead``."""

    def __init__(
        self,
        backbone: nn.Layer,
        rpn_head: nn.Layer,
        bbox_head: nn.Layer,
        bbox_post_process: nn.Layer,
        neck: nn.Layer | None = None,
    ):
        super().__init__(backbone, rpn_head, bbox_head, bbox_post_process, neck)


@register("architecture")
class MaskRCNN(TwoStageDetector):
    """Mask R-CNN (He et al. 2017), FPN or C4 (``MaskHead.share_bbox_feat``):
    ``TwoStageDetector`` with a ``BBoxHead`` and a ``MaskHead``."""

    default_mask_head = "MaskHead"

    def __init__(
        self,
        backbone: nn.Layer,
        rpn_head: nn.Layer,
        bbox_head: nn.Layer,
        mask_head: nn.Layer,
        bbox_post_process: nn.Layer,
        mask_post_process: nn.Layer | None = None,
        neck: nn.Layer | None = None,
    ):
        super().__init__(
            backbone, rpn_head, bbox_head, bbox_post_process, neck, mask_head, mask_post_process
        )


@register("architecture")
class CascadeRCNN(TwoStageDetector):
    """Cascade R-CNN (Cai & Vasconcelos 2018): ``TwoStageDetector`` with a ``CascadeHead``;
    with a ``mask_head`` it is Cascade Mask R-CNN."""

    default_bbox_head = "CascadeHead"
