"""Max-IoU assignment of anchors to ground-truth boxes (RetinaNet; RPN uses the same rule).

For an IoU matrix between N anchors and M gt boxes:

1. each anchor is matched to its highest-IoU gt box (the first on ties);
2. its label is 1 (positive) if that IoU >= ``positive_overlap``, 0 (negative) if it is
   < ``negative_overlap``, and -1 (ignored) in between;
3. with ``allow_low_quality``, every anchor whose IoU with some gt box equals that box's
   best IoU over all anchors (ties included) becomes positive, provided that best IoU is > 0,
   so each box that overlaps any anchor has at least one. The anchor keeps its step-1 match.

With no gt boxes every anchor is negative (matched index 0). These are the numbers of
PaddleDetection 2.x's ``MaxIoUAssigner``.
"""

from __future__ import annotations

import paddle

from ppdet.ops.boxes import box_iou

__all__ = ["MaxIoUAssigner", "max_iou_assign"]


def max_iou_assign(
    iou: paddle.Tensor,
    positive_overlap: float = 0.5,
    negative_overlap: float = 0.4,
    allow_low_quality: bool = True,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Assign from an IoU matrix (module docstring gives the rule).

    iou: [N, M] float, anchors x gt boxes.
    Returns (matched [N] int64 index into the gt boxes, labels [N] int32: 1 positive,
    0 negative, -1 ignored). M = 0 gives matched 0 and labels 0 everywhere.
    """
    n, m = iou.shape
    if m == 0 or n == 0:
        return paddle.zeros([n], "int64"), paddle.zeros([n], "int32")
    best = iou.max(axis=1)  # [N]
    matched = iou.argmax(axis=1)  # [N] int64
    labels = paddle.full([n], -1, "int32")
    labels = paddle.where(best < negative_overlap, paddle.zeros_like(labels), labels)
    labels = paddle.where(best >= positive_overlap, paddle.ones_like(labels), labels)
    if allow_low_quality:
        gt_best = iou.max(axis=0, keepdim=True)  # [1, M]
        is_best = paddle.logical_and(iou == gt_best, gt_best > 0)  # [N, M]
        labels = paddle.where(is_best.any(axis=1), paddle.ones_like(labels), labels)
    return matched, labels


class MaxIoUAssigner:
    """``assigner(anchors [N, 4], gt_boxes [M, 4])`` (x1y1x2y2 pixels) -> (matched [N] int64,
    labels [N] int32), see ``max_iou_assign``. Configured like PaddleDetection's
    ``bbox_assigner: {name: MaxIoUAssigner, positive_overlap, negative_overlap,
    allow_low_quality}``."""

    def __init__(
        self,
        positive_overlap: float = 0.5,
        negative_overlap: float = 0.4,
        allow_low_quality: bool = True,
    ) -> None:
        if not 0 <= negative_overlap <= positive_overlap <= 1:
            raise ValueError(
                "MaxIoUAssigner: need 0 <= negative_overlap <= positive_overlap <= 1, got "
                f"{negative_overlap}, {positive_overlap}"
            )
        self.positive_overlap = float(positive_overlap)
        self.negative_overlap = float(negative_overlap)
        self.allow_low_quality = bool(allow_low_quality)

    def __call__(
        self, anchors: paddle.Tensor, gt_boxes: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        if gt_boxes.shape[0] == 0:
            n = anchors.shape[0]
            return paddle.zeros([n], "int64"), paddle.zeros([n], "int32")
        return max_iou_assign(
            box_iou(anchors, gt_boxes),
            self.positive_overlap,
            self.negative_overlap,
            self.allow_low_quality,
        )

    def __repr__(self) -> str:
        return (
            f"MaxIoUAssigner(positive_overlap={self.positive_overlap}, "
            f"negative_overlap={self.negative_overlap}, "
            f"allow_low_quality={self.allow_low_quality})"
        )
