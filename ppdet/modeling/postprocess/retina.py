"""RetinaNet decoding: per-level top-k anchors, delta decoding, rescale to the original image.

The numbers are those of PaddleDetection 2.x's RetinaHead post-process: for each image and
pyramid level, class scores are sigmoid(logits); when a level has more than ``nms_pre``
anchors, only the ``nms_pre`` with the highest score over classes are kept (all classes of
a kept anchor); their deltas are decoded against the anchors (``decode_deltas``, ``weights``,
dw/dh clipped at log(1000 / 16), boxes *not* clipped to the image); the boxes of all levels
are divided by ``scale_factor`` into original-image pixels, then multi-class NMS selects
the detections.
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle

from ppdet.modeling.coders.delta_bbox import decode_deltas

__all__ = ["flatten_level", "retina_decode"]


def flatten_level(x: paddle.Tensor, k: int) -> paddle.Tensor:
    """One level's head output [B, A * k, H, W] (channel a * k + j) -> [B, H * W * A, k], row
    (y * W + x) * A + a: the anchor order of ``AnchorGenerator``."""
    b = x.shape[0]
    x = x.transpose([0, 2, 3, 1])  # [B, H, W, A*k]
    return x.reshape([b, -1, k])  # [B, H*W*A, k]


def retina_decode(
    cls_logits: Sequence[paddle.Tensor],
    bbox_deltas: Sequence[paddle.Tensor],
    anchors: Sequence[paddle.Tensor],
    scale_factor: paddle.Tensor,
    num_classes: int,
    nms_pre: int = 1000,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Candidate boxes and scores of a batch, ready for ``multiclass_nms``.

    cls_logits[i]: [B, A * C, H_i, W_i]; bbox_deltas[i]: [B, 4 A, H_i, W_i]; anchors[i]:
    [H_i * W_i * A, 4] input pixels; scale_factor: [B, 2] (h_scale, w_scale).
    Returns (boxes [B, N, 4] x1y1x2y2 original-image pixels, scores [B, C, N] in (0, 1)),
    N = sum_i min(nms_pre, H_i * W_i * A) (nms_pre <= 0 keeps every anchor).
    """
    all_boxes, all_scores = [], []
    for logits, deltas, level_anchors in zip(cls_logits, bbox_deltas, anchors, strict=True):
        scores = paddle.nn.functional.sigmoid(flatten_level(logits, num_classes))  # [B, n, C]
        deltas = flatten_level(deltas, 4)  # [B, n, 4]
        boxes = level_anchors.unsqueeze(0).expand(deltas.shape)  # [B, n, 4]
        n = scores.shape[1]
        if 0 < nms_pre < n:
            _, keep = paddle.topk(scores.max(axis=2), nms_pre, axis=1)  # [B, k]
            keep = keep.unsqueeze(-1)  # [B, k, 1]
            scores = paddle.take_along_axis(scores, keep.expand([-1, -1, num_classes]), 1)
            deltas = paddle.take_along_axis(deltas, keep.expand([-1, -1, 4]), 1)
            boxes = paddle.take_along_axis(boxes, keep.expand([-1, -1, 4]), 1)
        all_boxes.append(decode_deltas(deltas, boxes, weights))  # [B, k, 4]
        all_scores.append(scores)
    boxes = paddle.concat(all_boxes, axis=1)  # [B, N, 4] input pixels
    scale = scale_factor.astype(boxes.dtype)  # [B, 2] (h_scale, w_scale)
    scale = paddle.stack([scale[:, 1], scale[:, 0], scale[:, 1], scale[:, 0]], -1)  # [B, 4]
    boxes = boxes / scale.unsqueeze(1)  # [B, N, 4] original-image pixels
    scores = paddle.concat(all_scores, axis=1).transpose([0, 2, 1])  # [B, C, N]
    return boxes, scores
