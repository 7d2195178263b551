"""YOLOv3 decoding (Paddle's ``yolo_box`` kernel): boxes in original-image pixels and
per-class scores, ready for ``MultiClassNMS`` inside ``BBoxPostProcess``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import paddle
from paddle import nn
from paddle.vision.ops import yolo_box

from ppdet.config.registry import register
from ppdet.modeling.postprocess.bbox import original_size

__all__ = ["YOLOBox"]


@register("postprocess")
class YOLOBox(nn.Layer):
    """Decode YOLOv3 outputs into boxes of the original image.

    forward(raw, image_meta) with raw["outputs"][i]: [B, A_i*(5+C), H_i, W_i] (deepest first)
    and image_meta's im_shape / scale_factor [B, 2] -> (boxes [B, N, 4] x1y1x2y2 original-image
    pixels, scores [B, C, N], None), N = sum A_i H_i W_i. A prediction's score for class c is
    sigmoid(obj) * sigmoid(cls_c), or 0 (with a zero box) when sigmoid(obj) < conf_thresh.

    The anchors (per level [A_i, 2] as [w, h] input pixels) are the head's: the YOLOv3
    architecture hands them over once with ``set_anchors`` (they are kernel attributes, not
    tensors).

    Args:
        conf_thresh: objectness below which a prediction is dropped.
        downsample_ratio: stride of level 0; level i has downsample_ratio / 2**i.
        clip_bbox: clip boxes to the image.
        scale_x_y: centre sigmoid scale, as in YOLOv3Loss.
    """

    def __init__(
        self,
        conf_thresh: float = 0.005,
        downsample_ratio: int = 32,
        clip_bbox: bool = True,
        scale_x_y: float = 1.0,
    ):
        super().__init__()
        self.conf_thresh = conf_thresh
        self.downsample_ratio = downsample_ratio
        self.clip_bbox = clip_bbox
        self.scale_x_y = scale_x_y
        self.anchors: list[list[int]] | None = None  # per level, flat [w0, h0, w1, h1, ...]

    def set_anchors(self, anchors: Sequence[Sequence[Sequence[float]]]) -> None:
        """anchors[i]: level i's anchors [A_i, 2] as [w, h] input pixels (deepest level first)."""
        self.anchors = [[int(v) for wh in level for v in wh] for level in anchors]

    def forward(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor, None]:
        if self.anchors is None:
            raise RuntimeError("YOLOBox: no anchors; the YOLOv3 architecture sets its head's")
        outputs = raw["outputs"]
        if len(outputs) != len(self.anchors):
            raise ValueError(
                f"YOLOBox: {len(outputs)} output levels but anchors for {len(self.anchors)}"
            )
        img_size = original_size(image_meta["im_shape"], image_meta["scale_factor"])  # [B, 2]
        all_boxes, all_scores = [], []
        for i, (out, flat) in enumerate(zip(outputs, self.anchors)):
            num_classes = out.shape[1] // (len(flat) // 2) - 5
            boxes, scores = yolo_box(
                out,
                img_size,
                flat,
                num_classes,
                self.conf_thresh,
                self.downsample_ratio // 2**i,
                self.clip_bbox,
                scale_x_y=self.scale_x_y,
            )  # boxes [B, A*H*W, 4], scores [B, A*H*W, C]
            all_boxes.append(boxes)
            all_scores.append(scores)
        boxes = paddle.concat(all_boxes, axis=1)  # [B, N, 4]
        scores = paddle.concat(all_scores, axis=1).transpose([0, 2, 1])  # [B, C, N]
        return boxes, scores, None
