"""YOLO decoding, multi-class NMS, and the post-process that chains them.

``BBoxPostProcess(decode, nms)`` is generic: ``decode`` turns head outputs into boxes in
original-image pixels and per-class scores, ``nms`` selects the detections.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
from paddle import nn
from paddle.vision.ops import yolo_box

from ppdet.config.registry import register
from ppdet.ops.nms import multiclass_nms

__all__ = ["BBoxPostProcess", "MultiClassNMS", "YOLOBox", "original_size"]


def original_size(im_shape: paddle.Tensor, scale_factor: paddle.Tensor) -> paddle.Tensor:
    """(h, w) of the original image, rounded: im_shape [B, 2] / scale_factor [B, 2] -> [B, 2]
    int32.

    PaddleDetection 2.6 truncates instead, which turns e.g. 436.99997 (float32 of 320 /
    (320 / 437)) into 436; rounding gives back 437. Where the quotient is exact both agree.
    """
    return paddle.floor(im_shape / scale_factor + 0.5).astype("int32")


@register("postprocess")
class YOLOBox(nn.Layer):
    """Decode YOLOv3 outputs into boxes of the original image (Paddle's ``yolo_box`` op).

    forward(outputs, anchors, im_shape, scale_factor) with outputs[i]: [B, A_i*(5+C), H_i, W_i]
    (deepest first), anchors[i]: [A_i, 2] (w, h) input pixels, im_shape / scale_factor [B, 2]
    -> (boxes [B, N, 4] x1y1x2y2 original-image pixels, scores [B, C, N]), N = sum A_i H_i W_i.
    A prediction's score for class c is sigmoid(obj) * sigmoid(cls_c), or 0 (with a zero box)
    when sigmoid(obj) < conf_thresh.

    Args:
        conf_thresh: objectness below which a prediction is dropped.
        downsample_ratio: stride of level 0; level i has downsample_ratio / 2**i.
        clip_bbox: clip boxes to the image.
        scale_x_y: centre sigmoid scale, as in YOLOv3Loss.
    """

    def __init__(
        self,
        conf_thresh: float = 0.005,
        downsample_ratio: int = 32,
        clip_bbox: bool = True,
        scale_x_y: float = 1.0,
    ):
        super().__init__()
        self.conf_thresh = conf_thresh
        self.downsample_ratio = downsample_ratio
        self.clip_bbox = clip_bbox
        self.scale_x_y = scale_x_y

    def forward(
        self,
        outputs: Sequence[paddle.Tensor],
        anchors: Sequence[Sequence[Sequence[float]]],
        im_shape: paddle.Tensor,
        scale_factor: paddle.Tensor,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        img_size = original_size(im_shape, scale_factor)  # [B, 2] (h, w)
        all_boxes, all_scores = [], []
        for i, (out, level_anchors) in enumerate(zip(outputs, anchors)):
            num_classes = out.shape[1] // len(level_anchors) - 5
            boxes, scores = yolo_box(
                out,
                img_size,
                [int(v) for wh in level_anchors for v in wh],  # flat [w0, h0, w1, h1, ...]
                num_classes,
                self.conf_thresh,
                self.downsample_ratio // 2**i,
                self.clip_bbox,
                scale_x_y=self.scale_x_y,
            )  # boxes [B, A*H*W, 4], scores [B, A*H*W, C]
            all_boxes.append(boxes)
            all_scores.append(scores)
        boxes = paddle.concat(all_boxes, axis=1)  # [B, N, 4]
        scores = paddle.concat(all_scores, axis=1).transpose([0, 2, 1])  # [B, C, N]
        return boxes, scores


@register("postprocess")
class MultiClassNMS(nn.Layer):
    """Per-class NMS (``ppdet.ops.nms.multiclass_nms``).

    forward(boxes [B, N, 4], scores [B, C, N]) -> (detections [K, 6] rows (class, score, x1,
    y1, x2, y2), num [B] int32). The defaults are PaddleDetection 2.6's MultiClassNMS defaults.
    """

    def __init__(
        self,
        score_threshold: float = 0.05,
        nms_top_k: int = -1,
        keep_top_k: int = 100,
        nms_threshold: float = 0.5,
        background_label: int = -1,
    ):
        super().__init__()
        self.score_threshold = score_threshold
        self.nms_top_k = nms_top_k
        self.keep_top_k = keep_top_k
        self.nms_threshold = nms_threshold
        self.background_label = background_label

    def forward(
        self, boxes: paddle.Tensor, scores: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        return multiclass_nms(
            boxes,
            scores,
            score_threshold=self.score_threshold,
            nms_top_k=self.nms_top_k,
            keep_top_k=self.keep_top_k,
            nms_threshold=self.nms_threshold,
            background_label=self.background_label,
        )


@register("postprocess")
class BBoxPostProcess(nn.Layer):
    """Decode then NMS.

    forward(head_outputs, anchors, im_shape [B, 2], scale_factor [B, 2]) -> (bbox [K, 6]
    float32 rows (class, score, x1, y1, x2, y2) in original-image pixels, bbox_num [B] int32).
    ``anchors`` is whatever ``decode`` needs besides the outputs (YOLO: per-level anchors).
    Without arguments: ``YOLOBox()`` and ``MultiClassNMS()`` with their defaults.
    """

    def __init__(self, decode: nn.Layer | None = None, nms: nn.Layer | None = None):
        super().__init__()
        self.decode = YOLOBox() if decode is None else decode
        self.nms = MultiClassNMS() if nms is None else nms

    def forward(
        self,
        head_outputs: Sequence[paddle.Tensor],
        anchors: object,
        im_shape: paddle.Tensor,
        scale_factor: paddle.Tensor,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        boxes, scores = self.decode(head_outputs, anchors, im_shape, scale_factor)
        return self.nms(boxes, scores)
