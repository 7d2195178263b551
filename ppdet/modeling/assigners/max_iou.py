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

``fluid=True`` is PaddleDetection v0.1's ``retinanet_target_assign`` (fluid-era convention
``anchor_target_assign: "fluid"``): the IoU counts widths and heights with +1 pixel
(``fluid_iou``, fluid's ``BboxOverlaps``); an anchor is a low-quality match when its IoU is
within ``FLUID_EPS`` (1e-5) of a gt box's best; and a negative (IoU < ``negative_overlap``)
stays negative even when it is some box's best anchor (fluid labels negatives last).
"""

from __future__ import annotations

import paddle

from ppdet.ops.boxes import box_iou

__all__ = ["FLUID_EPS", "MaxIoUAssigner", "fluid_iou", "max_iou_assign"]

FLUID_EPS = 1e-5  # fluid's tolerance when it compares IoUs for equality


def fluid_iou(boxes1: paddle.Tensor, boxes2: paddle.Tensor) -> paddle.Tensor:
    """Pairwise IoU with fluid's +1 pixel convention (v0.1's ``BboxOverlaps``).

    boxes1: [N, 4], boxes2: [M, 4], x1y1x2y2 pixels (x2, y2 inclusive: a box covers
    x2 - x1 + 1 pixels). Returns [N, M]; boxes that do not overlap have IoU 0.
    """
    w1 = boxes1[:, 2] - boxes1[:, 0] + 1.0
    h1 = boxes1[:, 3] - boxes1[:, 1] + 1.0
    w2 = boxes2[:, 2] - boxes2[:, 0] + 1.0
    h2 = boxes2[:, 3] - boxes2[:, 1] + 1.0
    area1 = (w1 * h1).unsqueeze(1)  # [N, 1]
    area2 = (w2 * h2).unsqueeze(0)  # [1, M]
    b1 = boxes1.unsqueeze(1)  # [N, 1, 4]
    b2 = boxes2.unsqueeze(0)  # [1, M, 4]
    top_left = paddle.maximum(b1[..., :2], b2[..., :2])  # [N, M, 2]
    bottom_right = paddle.minimum(b1[..., 2:], b2[..., 2:])
    wh = (bottom_right - top_left + 1.0).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    union = area1 + area2 - inter
    return paddle.where(inter > 0, inter / union.clip(min=1e-9), paddle.zeros_like(inter))


def near_best_of_a_gt(iou: paddle.Tensor, fluid: bool) -> paddle.Tensor:
    """[N, M] IoU -> [N] bool: the anchor is (one of) the best anchors of some gt box with a
    best IoU > 0; equal IoUs, or within ``FLUID_EPS`` with ``fluid``."""
    gt_best = iou.max(axis=0, keepdim=True)  # [1, M]
    if fluid:
        near = (iou - gt_best).abs() < FLUID_EPS
    else:
        near = iou == gt_best
    return paddle.logical_and(near, gt_best > 0).any(axis=1)


def max_iou_assign(
    iou: paddle.Tensor,
    positive_overlap: float = 0.5,
    negative_overlap: float = 0.4,
    allow_low_quality: bool = True,
    fluid: bool = False,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Assign from an IoU matrix (module docstring gives the rule; ``fluid``: v0.1's).

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
    positive = best >= positive_overlap
    if allow_low_quality:
        positive = positive | near_best_of_a_gt(iou, fluid)
    if fluid:  # fluid: positives first, then negatives (which win)
        labels = paddle.where(positive, paddle.ones_like(labels), labels)
        labels = paddle.where(best < negative_overlap, paddle.zeros_like(labels), labels)
    else:
        labels = paddle.where(best < negative_overlap, paddle.zeros_like(labels), labels)
        labels = paddle.where(positive, paddle.ones_like(labels), labels)
    return matched, labels


class MaxIoUAssigner:
    """``assigner(anchors [N, 4], gt_boxes [M, 4])`` (x1y1x2y2 pixels) -> (matched [N] int64,
    labels [N] int32), see ``max_iou_assign``. Configured like PaddleDetection's
    ``bbox_assigner: {name: MaxIoUAssigner, positive_overlap, negative_overlap,
    allow_low_quality}``; ``fluid: true`` selects v0.1's rule (module docstring) and is
    declared in ``conventions`` (``ppdet.modeling.conventions``)."""

    def __init__(
        self,
        positive_overlap: float = 0.5,
        negative_overlap: float = 0.4,
        allow_low_quality: bool = True,
        fluid: bool = False,
    ) -> None:
        if not 0 <= negative_overlap <= positive_overlap <= 1:
            raise ValueError(
                "MaxIoUAssigner: need 0 <= negative_overlap <= positive_overlap <= 1, got "
                f"{negative_overlap}, {positive_overlap}"
            )
        self.positive_overlap = float(positive_overlap)
        self.negative_overlap = float(negative_overlap)
        self.allow_low_quality = bool(allow_low_quality)
        self.fluid = bool(fluid)
        self.conventions = {"anchor_target_assign": "fluid"} if self.fluid else {}

    def __call__(
        self, anchors: paddle.Tensor, gt_boxes: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        if gt_boxes.shape[0] == 0:
            n = anchors.shape[0]
            return paddle.zeros([n], "int64"), paddle.zeros([n], "int32")
        iou = fluid_iou(anchors, gt_boxes) if self.fluid else box_iou(anchors, gt_boxes)
        return max_iou_assign(
            iou, self.positive_overlap, self.negative_overlap, self.allow_low_quality, self.fluid
        )

    def __repr__(self) -> str:
        return (
            f"MaxIoUAssigner(positive_overlap={self.positive_overlap}, "
            f"negative_overlap={self.negative_overlap}, "
            f"allow_low_quality={self.allow_low_quality}, fluid={self.fluid})"
        )
