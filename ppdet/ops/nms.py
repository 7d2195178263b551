"""Multi-class non-maximum suppression.

A thin wrapper around Paddle's ``multiclass_nms3`` kernel (CPU and GPU), which does, for each
image and each class independently:

1. drop boxes whose class score is not above ``score_threshold``;
2. keep the ``nms_top_k`` highest scoring of the rest (all when -1);
3. greedy NMS: visit boxes by decreasing score, drop any whose IoU with a kept box of the same
   class is above ``nms_threshold`` (IoU without the "+1" pixel convention);

then keeps the ``keep_top_k`` highest scoring detections of the image over all classes (all
when -1). Rows come grouped by class (ascending), by decreasing score within a class.

Two layouts: dense (every image has the same N candidate boxes, shared by all classes) and
per-RoI (R-CNN: the RoIs of all images stacked, ``rois_num`` per image, one box per
class and RoI).
tests/modeling/test_nms.py checks this behaviour against a plain numpy implementation.
"""

from __future__ import annotations

import paddle
from paddle import _C_ops

__all__ = ["multiclass_nms"]


def multiclass_nms(
    boxes: paddle.Tensor,
    scores: paddle.Tensor,
    score_threshold: float = 0.05,
    nms_top_k: int = -1,
    keep_top_k: int = 100,
    nms_threshold: float = 0.5,
    background_label: int = -1,
    rois_num: paddle.Tensor | None = None,
    normalized: bool = True,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Per-class NMS for a batch of images.

    Dense: boxes [B, N, 4] x1y1x2y2 (pixels or normalised, the output keeps the unit) and
    scores [B, C, N] per-class scores of each box.
    Per-RoI (``rois_num`` [B] int given): boxes [R, C, 4] (class c's box of each RoI), scores
    [R, C], R = sum(rois_num), the RoIs of image b after those of images 0..b-1.
    background_label: a class index to ignore entirely, -1 for none.
    normalized: True for IoU on continuous boxes; False for the +1 pixel convention.
    Returns ``(detections [K, 6] float32, rows [class, score, x1, y1, x2, y2],
    num [B] int32)``, where ``num[b]`` rows of ``detections`` belong to image b, in order.
    An image without boxes, or none above the threshold, contributes no rows.
    """
    if rois_num is not None:
        rois_num = rois_num.astype("int32")
    # empty inputs (no boxes) are fine: the kernel returns [0, 6] and zero counts
    detections, _index, num = _C_ops.multiclass_nms3(
        boxes,
        scores,
        rois_num,  # None: a dense [B, N, 4] batch
        float(score_threshold),
        int(nms_top_k),
        int(keep_top_k),
        float(nms_threshold),
        bool(normalized),  # False: IoU with +1 widths
        1.0,  # nms_eta: plain (non-adaptive) NMS
        int(background_label),
    )
    return detections, num
