"""The box post-process of every detector: decode the raw head outputs, multi-class NMS,
detections in original-image pixels.

``BBoxPostProcess(decode, nms)`` is the one registered component (2.x config key
``BBoxPostProcess``) the architectures call as ``post_process(raw, image_meta)``. Its
``decode`` knows one head's raw outputs (``YOLOBox``, ``SSDBox``, ``RetinaBox``, ``RCNNBox``)
and returns ``(boxes, scores, rois_num)`` in one of two layouts:

- dense (one-stage heads, ``rois_num`` None): boxes [B, N, 4] x1y1x2y2 already in
  original-image pixels, scores [B, C, N];
- per-RoI (R-CNN, ``decode.rescale_after_nms`` true): boxes [R, C, 4] in input pixels
  (class-specific), scores [R, C], ``rois_num`` [B]; after NMS the kept boxes are divided by
  ``scale_factor``, clipped to the original image and those left without width or height
  dropped (``to_original_image``).

Each decoder rescales where PaddleDetection 2.x does (before or after NMS), so the detections
are 2.x's. Everything is Paddle tensor ops with no host round trip: the post-process runs
inside an exported graph (the NMS is Paddle's ``multiclass_nms3`` kernel).

``image_meta`` is a dict (a batch works) with ``im_shape`` [B, 2] (h, w of the network input
before padding) and ``scale_factor`` [B, 2] (h_scale, w_scale: input / original).
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from ppdet.config.registry import register
from ppdet.ops.boxes import clip_boxes
from ppdet.ops.nms import multiclass_nms

__all__ = [
    "BBoxPostProcess",
    "MultiClassNMS",
    "count_per_image",
    "image_of_rows",
    "original_size",
    "to_original_image",
]


def original_size(im_shape: paddle.Tensor, scale_factor: paddle.Tensor) -> paddle.Tensor:
    """(h, w) of the original image, rounded: im_shape [B, 2] / scale_factor [B, 2] -> [B, 2]
    int32.

    PaddleDetection 2.6 truncates instead, which turns e.g. 436.99997 (float32 of 320 /
    (320 / 437)) into 436; rounding gives back 437. Where the quotient is exact both agree.
    """
    return paddle.floor(im_shape / scale_factor + 0.5).astype("int32")


def _positions(x: paddle.Tensor) -> paddle.Tensor:
    """[n] int64 0..n-1 for the rows of ``x`` (n read at run time in a static graph)."""
    n = x.shape[0]
    if n is None or n < 0:
        n = paddle.shape(x)[0]
    return paddle.arange(n, dtype="int64")


def image_of_rows(num: paddle.Tensor) -> paddle.Tensor:
    """num [B] (rows per image) -> [sum(num)] int64: the image each row belongs to."""
    return paddle.repeat_interleave(_positions(num), num.astype("int64"))  # [K]


def count_per_image(image: paddle.Tensor, keep: paddle.Tensor, num: paddle.Tensor) -> paddle.Tensor:
    """image [K] int64 (image of each row), keep [K] bool, num [B] -> [B] int32 kept rows per
    image."""
    hit = (image.unsqueeze(0) == _positions(num).unsqueeze(1)) & keep.unsqueeze(0)  # [B, K]
    return hit.astype("int32").sum(axis=1).astype("int32")  # (sum widens to int64)


def to_original_image(
    det: paddle.Tensor, num: paddle.Tensor, image_meta: dict[str, paddle.Tensor]
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Detections in input pixels -> original-image pixels.

    det [K, 6] (class, score, x1, y1, x2, y2), num [B] -> the boxes divided by
    ``scale_factor``, clipped to ``original_size``; rows left with no width or height are
    dropped (2.x keeps them with class -1). Returns (det [K', 6], num [B] int32).
    """
    im_shape, scale_factor = image_meta["im_shape"], image_meta["scale_factor"]
    image = image_of_rows(num)  # [K]
    scale = paddle.gather(scale_factor.astype(det.dtype), image)  # [K, 2] (h, w)
    size = paddle.gather(original_size(im_shape, scale_factor).astype(det.dtype), image)
    xyxy = det[:, 2:] / paddle.concat([scale[:, 1:2], scale[:, 0:1]] * 2, axis=1)
    xyxy = clip_boxes(xyxy, size[:, 0], size[:, 1])  # [K, 4] original pixels
    det = paddle.concat([det[:, :2], xyxy], axis=1)
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # [K]
    num = count_per_image(image, keep, num)
    return paddle.gather(det, paddle.nonzero(keep).flatten()), num


@register("postprocess")
class MultiClassNMS(nn.Layer):
    """Per-class NMS (``ppdet.ops.nms.multiclass_nms``).

    forward(boxes, scores, rois_num=None) -> (detections [K, 6] rows (class, score, x1, y1, x2,
    y2), num [B] int32): dense boxes [B, N, 4] / scores [B, C, N], or per-RoI boxes [R, C, 4] /
    scores [R, C] with ``rois_num`` [B]. The defaults are PaddleDetection 2.6's MultiClassNMS
    defaults.
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
        self,
        boxes: paddle.Tensor,
        scores: paddle.Tensor,
        rois_num: paddle.Tensor | None = None,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        return multiclass_nms(
            boxes,
            scores,
            score_threshold=self.score_threshold,
            nms_top_k=self.nms_top_k,
            keep_top_k=self.keep_top_k,
            nms_threshold=self.nms_threshold,
            background_label=self.background_label,
            rois_num=rois_num,
        )


@register("postprocess")
class BBoxPostProcess(nn.Layer):
    """Decode, NMS, original-image pixels (module docstring).

    forward(raw, image_meta) -> (bbox [K, 6] float32 rows (class, score, x1, y1, x2, y2) in
    original-image pixels, bbox_num [B] int32); ``raw`` is the architecture's raw output dict
    (the keys its ``decode`` reads). An image without detections contributes no rows.
    Without arguments: ``YOLOBox()`` and ``MultiClassNMS()`` with their defaults.
    """

    def __init__(self, decode: nn.Layer | None = None, nms: nn.Layer | None = None):
        super().__init__()
        if decode is None:
            from ppdet.modeling.postprocess.yolo import YOLOBox

            decode = YOLOBox()
        self.decode = decode
        self.nms = MultiClassNMS() if nms is None else nms

    def forward(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        boxes, scores, rois_num = self.decode(raw, image_meta)
        det, num = self.nms(boxes, scores, rois_num)
        if getattr(self.decode, "rescale_after_nms", False):
            det, num = to_original_image(det, num, image_meta)
        return det, num
