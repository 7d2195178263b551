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
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.coders.delta_bbox import decode_deltas

__all__ = ["RetinaBox", "flatten_level", "retina_decode"]


def flatten_level(x: paddle.Tensor, k: int) -> paddle.Tensor:
    """One level's head output [B, A * k, H, W] (channel a * k + j) -> [B, H * W * A, k], row
    (y * W + x) * A + a: the anchor order of ``AnchorGenerator``."""
    x = x.transpose([0, 2, 3, 1])  # [B, H, W, A*k]
    return x.reshape([0, -1, k])  # [B, H*W*A, k] (0: keep B, also when unknown)


def _best_anchors(
    scores: paddle.Tensor, deltas: paddle.Tensor, boxes: paddle.Tensor, k: int | paddle.Tensor
) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """The k anchors of highest class score: scores [B, n, C], deltas / boxes [B, n, 4] ->
    the same with k rows, by decreasing best score."""
    _, keep = paddle.topk(scores.max(axis=2), k, axis=1)  # [B, k]
    keep = keep.unsqueeze(-1)  # [B, k, 1]
    scores = paddle.take_along_axis(scores, keep.expand([-1, -1, scores.shape[2]]), 1)
    deltas = paddle.take_along_axis(deltas, keep.expand([-1, -1, 4]), 1)
    boxes = paddle.take_along_axis(boxes, keep.expand([-1, -1, 4]), 1)
    return scores, deltas, boxes


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
    N = sum_i min(nms_pre, H_i * W_i * A) (nms_pre <= 0 keeps every anchor). In a static graph
    whose level sizes are unknown the top-k always runs (a level with at most nms_pre anchors
    is then sorted by score; the detections after NMS are the same up to score ties).
    """
    if not len(cls_logits) == len(bbox_deltas) == len(anchors):
        raise ValueError(
            f"retina_decode: {len(cls_logits)} score, {len(bbox_deltas)} delta and "
            f"{len(anchors)} anchor levels"
        )
    all_boxes, all_scores = [], []
    # (no zip(strict=True): the static-graph translator does not take it)
    for logits, deltas, level_anchors in zip(cls_logits, bbox_deltas, anchors):
        scores = paddle.nn.functional.sigmoid(flatten_level(logits, num_classes))  # [B, n, C]
        deltas = flatten_level(deltas, 4)  # [B, n, 4]
        boxes = level_anchors.unsqueeze(0).expand(deltas.shape)  # [B, n, 4]
        if nms_pre > 0 and not paddle.in_dynamic_mode():  # level sizes known at run time only
            k = paddle.minimum(paddle.shape(scores)[1], paddle.full([], nms_pre, "int64"))
            scores, deltas, boxes = _best_anchors(scores, deltas, boxes, k)
        elif 0 < nms_pre < scores.shape[1]:
            scores, deltas, boxes = _best_anchors(scores, deltas, boxes, nms_pre)
        all_boxes.append(decode_deltas(deltas, boxes, weights))  # [B, k, 4]
        all_scores.append(scores)
    boxes = paddle.concat(all_boxes, axis=1)  # [B, N, 4] input pixels
    scale = scale_factor.astype(boxes.dtype)  # [B, 2] (h_scale, w_scale)
    scale = paddle.stack([scale[:, 1], scale[:, 0], scale[:, 1], scale[:, 0]], -1)  # [B, 4]
    boxes = boxes / scale.unsqueeze(1)  # [B, N, 4] original-image pixels
    scores = paddle.concat(all_scores, axis=1).transpose([0, 2, 1])  # [B, C, N]
    return boxes, scores


@register("postprocess")
class RetinaBox(nn.Layer):
    """``retina_decode`` as a ``BBoxPostProcess`` decoder.

    forward(raw, image_meta) with raw["cls_logits"], raw["bbox_deltas"], raw["anchors"] (per
    level, see ``retina_decode``) and image_meta's scale_factor -> (boxes [B, N, 4]
    original-image pixels, scores [B, C, N], None). 2.x does not clip RetinaNet boxes to the
    image, so ``im_shape`` is unused. RetinaNet builds it from its head's ``num_classes``,
    ``nms_pre`` and ``weights`` (2.x keeps those keys in the RetinaHead section).
    """

    def __init__(
        self,
        num_classes: int = 80,
        nms_pre: int = 1000,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.nms_pre = int(nms_pre)
        self.weights = [float(w) for w in weights]

    def forward(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor, None]:
        boxes, scores = retina_decode(
            raw["cls_logits"],
            raw["bbox_deltas"],
            raw["anchors"],
            image_meta["scale_factor"],
            self.num_classes,
            self.nms_pre,
            self.weights,
        )
        return boxes, scores, None
