"""RPN training targets (Ren et al. 2015), PaddleDetection 2.x's RPNTargetAssign numbers.

Per image: anchors are matched to the gt boxes by ``max_iou_assign`` (IoU >= 0.7 positive,
< 0.3 negative, the best anchors of each gt box positive too), then ``batch_size_per_im``
(256) of them are sampled with at most ``fg_fraction`` (half) positive; every other anchor is
ignored. Regression targets are ``encode_deltas(anchor, matched gt, weights)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle

from ppdet.modeling.assigners.max_iou import max_iou_assign
from ppdet.modeling.assigners.sampler import subsample_labels
from ppdet.modeling.coders.delta_bbox import encode_deltas
from ppdet.ops.boxes import box_iou

__all__ = ["RPNTargetAssign"]


class RPNTargetAssign:
    """``assign(anchors [N, 4], gt_boxes [M, 4])`` (one image, x1y1x2y2 pixels) ->
    (labels [N] int32: 1 positive, 0 negative, -1 not sampled; deltas [N, 4] targets, zero
    without gt). Config keys are 2.x's; ``ignore_thresh`` only -1 (no crowd handling)."""

    def __init__(
        self,
        batch_size_per_im: int = 256,
        fg_fraction: float = 0.5,
        positive_overlap: float = 0.7,
        negative_overlap: float = 0.3,
        ignore_thresh: float = -1.0,
        use_random: bool = True,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    ) -> None:
        if ignore_thresh > 0:
            raise ValueError("RPNHead.rpn_target_assign: ignore_thresh > 0 is not implemented")
        if not 0 <= negative_overlap <= positive_overlap <= 1:
            raise ValueError(
                "RPNHead.rpn_target_assign: need 0 <= negative_overlap <= positive_overlap <= 1"
            )
        self.batch_size_per_im = int(batch_size_per_im)
        self.fg_fraction = float(fg_fraction)
        self.positive_overlap = float(positive_overlap)
        self.negative_overlap = float(negative_overlap)
        self.use_random = bool(use_random)
        self.weights = [float(w) for w in weights]

    @paddle.no_grad()
    def __call__(
        self, anchors: paddle.Tensor, gt_boxes: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        n = anchors.shape[0]
        if gt_boxes.shape[0] == 0:
            match = paddle.zeros([n], "int32")  # all background
        else:
            matched, match = max_iou_assign(
                box_iou(anchors, gt_boxes), self.positive_overlap, self.negative_overlap, True
            )
        fg, bg = subsample_labels(
            match, self.batch_size_per_im, self.fg_fraction, 0, self.use_random
        )
        labels = paddle.full([n], -1, "int32")
        if bg.shape[0]:
            labels = paddle.scatter(labels, bg, paddle.zeros([bg.shape[0]], "int32"))
        if fg.shape[0]:
            labels = paddle.scatter(labels, fg, paddle.ones([fg.shape[0]], "int32"))
        if gt_boxes.shape[0] == 0:
            return labels, paddle.zeros_like(anchors)
        deltas = encode_deltas(anchors, paddle.gather(gt_boxes, matched), self.weights)  # [N, 4]
        return labels, deltas
