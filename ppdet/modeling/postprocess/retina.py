"""RetinaNet decoding: per-level top-k anchors, delta decoding, rescale to the original image.

The numbers are those of PaddleDetection 2.x's RetinaHead post-process: for each image and
pyramid level, class scores are sigmoid(logits); when a level has more than ``nms_pre``
anchors, only the ``nms_pre`` with the highest score over classes are kept (all classes of
a kept anchor); their deltas are decoded against the anchors (``decode_deltas``, ``weights``,
dw/dh clipped at log(1000 / 16), boxes *not* clipped to the image); the boxes of all levels
are divided by ``scale_factor`` into original-image pixels, then multi-class NMS selects
the detections.

``RetinaNetDetectionOutput`` is PaddleDetection v0.1's (fluid's ``retinanet_detection_output``)
instead, for converted v0.1 checkpoints: thresholds and top-k per level on (anchor, class)
pairs, +1-pixel decoding, boxes clipped to the padded input, +1-pixel NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.coders.delta_bbox import decode_deltas
from ppdet.ops.nms import multiclass_nms

__all__ = [
    "RetinaBox",
    "RetinaNetDetectionOutput",
    "flatten_level",
    "fluid_retina_candidates",
    "retina_decode",
]


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


def _take_rows(x: paddle.Tensor, index: paddle.Tensor) -> paddle.Tensor:
    """x [B, n, k], index [B, m] int64 -> [B, m, k] (row index[b, j] of image b)."""
    index = index.unsqueeze(-1).expand([-1, -1, x.shape[2]])  # [B, m, k]
    return paddle.take_along_axis(x, index, 1)


def fluid_retina_candidates(
    cls_logits: Sequence[paddle.Tensor],
    bbox_deltas: Sequence[paddle.Tensor],
    anchors: Sequence[paddle.Tensor],
    scale_factor: paddle.Tensor,
    input_size: paddle.Tensor,
    num_classes: int,
    score_threshold: float = 0.05,
    nms_top_k: int = 1000,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The candidates of fluid's ``retinanet_detection_output`` (PaddleDetection v0.1) for a
    batch, ready for its per-class NMS.

    Per image and level: the (anchor, class) pairs whose sigmoid score is above
    ``score_threshold`` (the coarsest level: above 0), the ``nms_top_k`` best of them by score;
    each decoded against its anchor with fluid's +1 widths and no dw/dh clamp
    (``decode_deltas(legacy_plus_one=True, clip_ratio=None)``), divided by ``scale_factor``
    and clipped to ``[0, round(padded side / scale) - 1]``, the padded network input
    (``input_size``) in original pixels, as v0.1's ``im_info`` held the padded size.

    cls_logits[i]: [B, A * C, H_i, W_i]; bbox_deltas[i]: [B, 4 A, H_i, W_i]; anchors[i]:
    [H_i * W_i * A, 4] input pixels (fluid's, ``AnchorGenerator(fluid=True)``); scale_factor:
    [B, 2] (h_scale, w_scale); input_size: [2] (padded H, W of the network input).
    Returns (boxes [B, N, 4] x1y1x2y2 original pixels, scores [B, C, N]: a candidate's score in
    its class row, 0 elsewhere), N = sum_i min(nms_top_k, H_i * W_i * A * C).
    """
    if not len(cls_logits) == len(bbox_deltas) == len(anchors):
        raise ValueError(
            f"fluid_retina_candidates: {len(cls_logits)} score, {len(bbox_deltas)} delta and "
            f"{len(anchors)} anchor levels"
        )
    scale = scale_factor.astype("float32")  # [B, 2] (h, w)
    size = input_size.astype("float32")  # [2] (H, W) padded
    limit_h = paddle.round(size[0] / scale[:, 0]) - 1  # [B]
    limit_w = paddle.round(size[1] / scale[:, 1]) - 1
    low = paddle.zeros([4], "float32")
    divisor = paddle.stack([scale[:, 1], scale[:, 0], scale[:, 1], scale[:, 0]], -1)  # [B, 4]
    limit = paddle.stack([limit_w, limit_h, limit_w, limit_h], -1)  # [B, 4]
    all_boxes, all_scores = [], []
    last = len(cls_logits) - 1
    for level, (logits, deltas, level_anchors) in enumerate(zip(cls_logits, bbox_deltas, anchors)):
        scores = paddle.nn.functional.sigmoid(flatten_level(logits, num_classes))  # [B, n, C]
        flat = scores.reshape([0, -1])  # [B, n * C], index anchor * C + class
        if paddle.in_dynamic_mode():
            k = min(nms_top_k, flat.shape[1]) if nms_top_k > 0 else flat.shape[1]
        else:  # level sizes known at run time only
            k = paddle.shape(flat)[1]
            if nms_top_k > 0:
                k = paddle.minimum(k, paddle.full([], nms_top_k, k.dtype))
        top, index = paddle.topk(flat, k, axis=1)  # [B, k] by decreasing score
        threshold = score_threshold if level < last else 0.0
        top = paddle.where(top > threshold, top, paddle.zeros_like(top))  # 0: not a candidate
        anchor = index // num_classes  # [B, k]
        cls = index % num_classes
        d = _take_rows(flatten_level(deltas, 4), anchor)  # [B, k, 4]
        a = paddle.gather(level_anchors, anchor.reshape([-1])).reshape(d.shape)  # [B, k, 4]
        boxes = decode_deltas(d, a, clip_ratio=None, legacy_plus_one=True)  # input pixels
        boxes = boxes / divisor.unsqueeze(1)  # [B, k, 4] original pixels
        boxes = paddle.maximum(paddle.minimum(boxes, limit.unsqueeze(1)), low)
        onehot = paddle.nn.functional.one_hot(cls, num_classes)  # [B, k, C]
        all_scores.append((onehot * top.unsqueeze(-1)).transpose([0, 2, 1]))  # [B, C, k]
        all_boxes.append(boxes)
    return paddle.concat(all_boxes, axis=1), paddle.concat(all_scores, axis=2)


@register("postprocess")
class RetinaNetDetectionOutput(nn.Layer):
    """fluid's ``retinanet_detection_output``: PaddleDetection v0.1's RetinaNet post-process
    (the ``retina_detection_output: "fluid"`` convention; with it ``box_coder_plus_one``).

    Candidates as ``fluid_retina_candidates`` (per level top ``nms_top_k`` above
    ``score_threshold``, +1 decoding, clipped to the padded input), then per-class NMS with
    +1-pixel IoU (``nms_threshold``; v0.1's nms_eta 1: plain NMS) over all levels and the ``keep_top_k`` best
    detections of each image. v0.1's RetinaHead ``output_decoder`` keys: score_thresh,
    pre_nms_top_n, nms_thresh, nms_eta, detections_per_im.

    forward(raw, image_meta) -> (bbox [K, 6] rows (class, score, x1, y1, x2, y2) original
    pixels, bbox_num [B] int32), like ``BBoxPostProcess``. ``raw``: RetinaNet's
    ``cls_logits``, ``bbox_deltas``, ``anchors`` and ``input_size`` (padded H, W);
    ``image_meta``: ``scale_factor`` [B, 2]. Select it with ``RetinaNet.post_process``.
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        num_classes: int = 80,
        score_threshold: float = 0.05,
        nms_top_k: int = 1000,
        keep_top_k: int = 100,
        nms_threshold: float = 0.5,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.score_threshold = float(score_threshold)
        self.nms_top_k = int(nms_top_k)
        self.keep_top_k = int(keep_top_k)
        self.nms_threshold = float(nms_threshold)
        self.conventions = {"retina_detection_output": "fluid", "box_coder_plus_one": True}

    def forward(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        boxes, scores = fluid_retina_candidates(
            raw["cls_logits"],
            raw["bbox_deltas"],
            raw["anchors"],
            image_meta["scale_factor"],
            raw["input_size"],
            self.num_classes,
            self.score_threshold,
            self.nms_top_k,
        )
        return multiclass_nms(
            boxes,
            scores,
            score_threshold=0.0,  # the candidates' thresholds are applied; 0 = no candidate
            nms_top_k=-1,
            keep_top_k=self.keep_top_k,
            nms_threshold=self.nms_threshold,
            normalized=False,  # IoU with +1 widths
        )
