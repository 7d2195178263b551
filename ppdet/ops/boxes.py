"""Pure box functions on paddle tensors.

Boxes are ``[..., 4]`` float tensors. ``xyxy`` is (x1, y1, x2, y2) and ``cxcywh`` is
(centre x, centre y, width, height), both in the same unit as the input (pixels, or fractions
of the image). No "+1" convention: a box from 0 to 10 is 10 wide. Every function accepts any
number of leading batch dimensions, including empty ones (N = 0).
"""

from __future__ import annotations

import paddle

__all__ = [
    "box_area",
    "box_cxcywh_to_xyxy",
    "box_giou_aligned",
    "box_iou",
    "box_iou_aligned",
    "box_xyxy_to_cxcywh",
    "clip_boxes",
    "enclosing_box",
]


def box_area(boxes: paddle.Tensor) -> paddle.Tensor:
    """Area of xyxy boxes.

    boxes: [..., 4] x1y1x2y2. Returns [...]; a box with x2 < x1 or y2 < y1 has area 0.
    """
    w = (boxes[..., 2] - boxes[..., 0]).clip(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clip(min=0)
    return w * h


def box_iou(boxes1: paddle.Tensor, boxes2: paddle.Tensor, eps: float = 1e-9) -> paddle.Tensor:
    """Pairwise intersection over union.

    boxes1: [..., N, 4] and boxes2: [..., M, 4], x1y1x2y2; the leading dimensions broadcast.
    Returns [..., N, M]. Two zero-area boxes have IoU 0.
    """
    area1 = box_area(boxes1).unsqueeze(-1)  # [..., N, 1]
    area2 = box_area(boxes2).unsqueeze(-2)  # [..., 1, M]
    b1 = boxes1.unsqueeze(-2)  # [..., N, 1, 4]
    b2 = boxes2.unsqueeze(-3)  # [..., 1, M, 4]
    top_left = paddle.maximum(b1[..., :2], b2[..., :2])  # [..., N, M, 2]
    bottom_right = paddle.minimum(b1[..., 2:], b2[..., 2:])  # [..., N, M, 2]
    wh = (bottom_right - top_left).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]  # [..., N, M]
    union = area1 + area2 - inter
    return inter / union.clip(min=eps)


def _aligned_inter_union(
    boxes1: paddle.Tensor, boxes2: paddle.Tensor
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Intersection and union areas of boxes1[i] with boxes2[i]: [..., 4] each -> [...], [...]."""
    top_left = paddle.maximum(boxes1[..., :2], boxes2[..., :2])  # [..., 2]
    bottom_right = paddle.minimum(boxes1[..., 2:], boxes2[..., 2:])  # [..., 2]
    wh = (bottom_right - top_left).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(boxes1) + box_area(boxes2) - inter


def box_iou_aligned(
    boxes1: paddle.Tensor, boxes2: paddle.Tensor, eps: float = 1e-9
) -> paddle.Tensor:
    """Intersection over union of corresponding boxes (not pairwise).

    boxes1, boxes2: [..., 4] x1y1x2y2 of the same shape (or broadcasting). Returns [...] in
    [0, 1]; two zero-area boxes have IoU 0. Differentiable; the gradient stays finite for
    zero-area, identical, disjoint and nested boxes (the union is clipped at ``eps``).
    """
    inter, union = _aligned_inter_union(boxes1, boxes2)
    return inter / union.clip(min=eps)


def enclosing_box(boxes1: paddle.Tensor, boxes2: paddle.Tensor) -> paddle.Tensor:
    """The smallest box containing boxes1[i] and boxes2[i]: [..., 4] each -> [..., 4] x1y1x2y2."""
    top_left = paddle.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = paddle.maximum(boxes1[..., 2:], boxes2[..., 2:])
    return paddle.concat([top_left, bottom_right], axis=-1)


def box_giou_aligned(
    boxes1: paddle.Tensor, boxes2: paddle.Tensor, eps: float = 1e-9
) -> paddle.Tensor:
    """Generalized IoU (Rezatofighi et al. 2019) of corresponding boxes.

    GIoU = IoU - (C - U) / C, C the area of ``enclosing_box``, U the union. boxes1, boxes2:
    [..., 4] x1y1x2y2. Returns [...] in [-1, 1]: 1 for identical boxes, tending to -1 for
    small boxes far apart. Areas are clipped at ``eps`` before dividing (finite gradients for
    zero-area boxes; two zero-area boxes at one point have GIoU 0).
    """
    inter, union = _aligned_inter_union(boxes1, boxes2)
    iou = inter / union.clip(min=eps)
    enclosing = box_area(enclosing_box(boxes1, boxes2))
    return iou - (enclosing - union) / enclosing.clip(min=eps)


def box_xyxy_to_cxcywh(boxes: paddle.Tensor) -> paddle.Tensor:
    """[..., 4] x1y1x2y2 -> [..., 4] cxcywh (same unit)."""
    x1, y1, x2, y2 = paddle.unbind(boxes, axis=-1)
    return paddle.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def box_cxcywh_to_xyxy(boxes: paddle.Tensor) -> paddle.Tensor:
    """[..., 4] cxcywh -> [..., 4] x1y1x2y2 (same unit)."""
    cx, cy, w, h = paddle.unbind(boxes, axis=-1)
    return paddle.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def clip_boxes(
    boxes: paddle.Tensor,
    height: float | paddle.Tensor,
    width: float | paddle.Tensor,
) -> paddle.Tensor:
    """Clip xyxy boxes to the image ``[0, width] x [0, height]``.

    boxes: [..., 4] x1y1x2y2 pixels. height, width: numbers, or tensors that broadcast
    against ``boxes[..., 0]`` (e.g. [B, 1] for boxes [B, N, 4]).
    """
    zero = paddle.zeros_like(boxes[..., 0])
    w = zero + width  # [...] broadcast to the box layout
    h = zero + height
    x1 = paddle.minimum(paddle.maximum(boxes[..., 0], zero), w)
    y1 = paddle.minimum(paddle.maximum(boxes[..., 1], zero), h)
    x2 = paddle.minimum(paddle.maximum(boxes[..., 2], zero), w)
    y2 = paddle.minimum(paddle.maximum(boxes[..., 3], zero), h)
    return paddle.stack([x1, y1, x2, y2], axis=-1)
