"""R-CNN decoding: class-specific boxes of every RoI, clipped to the input image, for the
per-RoI NMS of ``BBoxPostProcess`` (which then rescales to the original image).

The numbers of PaddleDetection 2.x's ``RCNNBox`` + ``BBoxPostProcess``: class probabilities
are the softmax without the last (background) column; each RoI's deltas for class c
(columns 4c..4c+3) are decoded against the RoI with weights ``prior_box_var`` [10, 10, 5, 5]
(dw/dh clipped at log(1000/16)) and clipped to the input image ``im_shape``; per-class NMS
(``MultiClassNMS`` settings: score > 0.05, IoU 0.5, 100 per image); the kept boxes are divided
by ``scale_factor`` and clipped to the original image (``round(im_shape / scale_factor)``).
Boxes left with no width or height are dropped (2.x keeps them with class -1), and an image
without detections contributes no rows (2.x adds a fake one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.coders.delta_bbox import decode_deltas
from ppdet.ops.boxes import clip_boxes

__all__ = ["RCNNBox"]


@register("postprocess")
class RCNNBox(nn.Layer):
    """forward(raw, image_meta) with raw["deltas"] [R, 4C] (or class-agnostic [R, 4]),
    raw["scores"] [R, C+1] softmax probabilities (background last), raw["rois"] [R, 4] input
    pixels and raw["rois_num"] [B] -> (boxes [R, C, 4] input pixels clipped to im_shape,
    scores [R, C], rois_num [B]); ``rescale_after_nms`` tells ``BBoxPostProcess`` to move the
    kept boxes to the original image after NMS, as 2.x does.

    ``num_classes``, ``box_normalized`` (false only) and ``code_type`` are 2.x config keys."""

    __shared__ = ["num_classes"]
    rescale_after_nms = True

    def __init__(
        self,
        prior_box_var: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        code_type: str = "decode_center_size",
        box_normalized: bool = False,
        num_classes: int = 80,
    ):
        super().__init__()
        if box_normalized or code_type != "decode_center_size":
            raise ValueError("RCNNBox: only code_type decode_center_size, box_normalized false")
        self.prior_box_var = [float(v) for v in prior_box_var]

    def forward(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        deltas, probs, rois_num = raw["deltas"], raw["scores"], raw["rois_num"]
        num_classes = probs.shape[1] - 1
        boxes = decode_deltas(deltas, raw["rois"], self.prior_box_var)  # [R, 4C] or [R, 4]
        boxes = boxes.reshape([-1, deltas.shape[1] // 4, 4])  # [R, C, 4] or [R, 1, 4]
        if boxes.shape[1] != num_classes:  # class-agnostic deltas (Cascade): one box for all
            boxes = boxes.expand([-1, num_classes, 4])  # [R, C, 4]
        im_shape = image_meta["im_shape"]
        img = paddle.repeat_interleave(im_shape, rois_num.astype("int64"), axis=0)  # [R, 2]
        boxes = clip_boxes(boxes, img[:, 0:1], img[:, 1:2])  # [R, 1] broadcast over classes
        return boxes, probs[:, :-1], rois_num
