"""SSD decoding: softmax scores and variance-coded boxes on priors, in original-image pixels.

The numbers are those of PaddleDetection 2.x's ``SSDBox``: class probabilities are the softmax
over the C + 1 logits (background last, dropped here, which equals 2.x's NMS
``background_label = C``); the deltas are decoded against the priors (fractions of the input
image) with ``decode_deltas(weights = 1 / var, clip_ratio=None)``, then multiplied by the
original image size ``im_shape / scale_factor`` (the priors span the whole input, so no
padding is involved). Boxes are not clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.coders.delta_bbox import decode_deltas

__all__ = ["SSDBox"]


@register("postprocess")
class SSDBox(nn.Layer):
    """Decode SSD head outputs (module docstring).

    forward(raw, image_meta) with raw["box_deltas"] [B, N, 4], raw["cls_logits"] [B, N, C + 1]
    and raw["priors"] [N, 4] (fractions of the input image), image_meta's im_shape /
    scale_factor [B, 2] -> (boxes [B, N, 4] x1y1x2y2 original-image pixels, scores [B, C, N]
    softmax probabilities of the foreground classes, None).

    Args:
        prior_box_var: the SSD variances (box coder weights are their inverses).
    """

    def __init__(self, prior_box_var: Sequence[float] = (0.1, 0.1, 0.2, 0.2)):
        super().__init__()
        if len(prior_box_var) != 4 or any(v <= 0 for v in prior_box_var):
            raise ValueError(
                f"SSDBox: prior_box_var must be 4 positive numbers, got {prior_box_var}"
            )
        self.weights = [1.0 / float(v) for v in prior_box_var]

    def forward(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor, None]:
        priors = raw["priors"].unsqueeze(0)  # [1, N, 4]
        boxes = decode_deltas(raw["box_deltas"], priors, self.weights, clip_ratio=None)
        size = image_meta["im_shape"] / image_meta["scale_factor"]  # [B, 2] (h, w) original
        size = size.astype(boxes.dtype)
        size = paddle.stack([size[:, 1], size[:, 0], size[:, 1], size[:, 0]], -1)  # [B, 4]
        boxes = boxes * size.unsqueeze(1)  # [B, N, 4]
        scores = F.softmax(raw["cls_logits"], axis=-1)[:, :, :-1]  # [B, N, C]
        return boxes, scores.transpose([0, 2, 1]), None
