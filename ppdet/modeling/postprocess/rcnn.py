"""R-CNN post-process: class-specific decoding, per-class NMS, rescale to the original image.

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

import paddle
from paddle import _C_ops, nn

from ppdet.config.registry import register
from ppdet.modeling.coders.delta_bbox import decode_deltas
from ppdet.modeling.postprocess.yolo import original_size
from ppdet.ops.boxes import clip_boxes

__all__ = ["RCNNBox", "rcnn_nms", "rcnn_post_process"]


@register("postprocess")
class RCNNBox(nn.Layer):
    """forward((deltas [R, 4C] or class-agnostic [R, 4], probs [R, C+1]), rois [R, 4],
    rois_num [B], im_shape [B, 2]) -> (boxes [R, C, 4] input pixels clipped to the image,
    scores [R, C]).

    ``num_classes``, ``box_normalized`` (false only) and ``code_type`` are 2.x config keys."""

    __shared__ = ["num_classes"]

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
        self,
        head_outputs: tuple[paddle.Tensor, paddle.Tensor],
        rois: paddle.Tensor,
        rois_num: paddle.Tensor,
        im_shape: paddle.Tensor,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        deltas, probs = head_outputs
        num_classes = probs.shape[1] - 1
        boxes = decode_deltas(deltas, rois, self.prior_box_var)  # [R, 4C] or [R, 4]
        boxes = boxes.reshape([-1, deltas.shape[1] // 4, 4])  # [R, C, 4] or [R, 1, 4]
        if boxes.shape[1] != num_classes:  # class-agnostic deltas (Cascade): one box for all
            boxes = boxes.expand([-1, num_classes, 4])  # [R, C, 4]
        img = paddle.repeat_interleave(im_shape, rois_num.astype("int64"), axis=0)  # [R, 2]
        boxes = clip_boxes(boxes, img[:, 0:1], img[:, 1:2])  # [R, 1] broadcast over classes
        return boxes, probs[:, :-1]


def rcnn_nms(
    boxes: paddle.Tensor,
    scores: paddle.Tensor,
    rois_num: paddle.Tensor,
    nms: nn.Layer,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Per-class NMS with class-specific boxes (Paddle's ``multiclass_nms3`` with rois_num).

    boxes [R, C, 4], scores [R, C], rois_num [B] -> (detections [K, 6] (class, score, x1, y1,
    x2, y2), num [B] int32). ``nms`` supplies score_threshold, nms_top_k, keep_top_k,
    nms_threshold (a ``MultiClassNMS``).
    """
    batch = rois_num.shape[0]
    if boxes.shape[0] == 0:
        return paddle.zeros([0, 6], boxes.dtype), paddle.zeros([batch], "int32")
    det, _index, num = _C_ops.multiclass_nms3(
        boxes,
        scores,
        rois_num.astype("int32"),
        float(nms.score_threshold),
        int(nms.nms_top_k),
        int(nms.keep_top_k),
        float(nms.nms_threshold),
        True,  # normalized: IoU without the +1 pixel convention
        1.0,
        -1,  # no background column: it was dropped
    )
    return det, num


def rcnn_post_process(
    head_outputs: tuple[paddle.Tensor, paddle.Tensor],
    rois: paddle.Tensor,
    rois_num: paddle.Tensor,
    im_shape: paddle.Tensor,
    scale_factor: paddle.Tensor,
    decode: RCNNBox,
    nms: nn.Layer,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Detections of a batch: (bbox [K, 6] float32 rows (class, score, x1, y1, x2, y2)
    original-image pixels, bbox_num [B] int32); see the module docstring."""
    boxes, scores = decode(head_outputs, rois, rois_num, im_shape)
    det, num = rcnn_nms(boxes, scores, rois_num, nms)
    if det.shape[0] == 0:
        return det.reshape([0, 6]), num
    image = paddle.repeat_interleave(paddle.arange(num.shape[0]), num.astype("int64"))  # [K]
    scale = paddle.gather(scale_factor.astype(det.dtype), image)  # [K, 2] (h, w)
    size = paddle.gather(original_size(im_shape, scale_factor).astype(det.dtype), image)
    xyxy = det[:, 2:] / paddle.concat([scale[:, 1:2], scale[:, 0:1]] * 2, axis=1)
    xyxy = clip_boxes(xyxy, size[:, 0], size[:, 1])  # [K, 4] original pixels
    det = paddle.concat([det[:, :2], xyxy], axis=1)
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # [K]
    if bool(keep.all()):
        return det, num
    num = paddle.to_tensor(
        [int(k.astype("int32").sum()) for k in paddle.split(keep, num.tolist())], "int32"
    )
    return paddle.gather(det, paddle.nonzero(keep).flatten()), num
