"""Mask R-CNN mask targets: the polygons of each foreground RoI's matched gt object, cropped
and scaled to the RoI and rasterised at ``mask_resolution`` x ``mask_resolution``.

For a RoI (x1, y1, x2, y2) with w = max(x2 - x1, 0.1), h = max(y2 - y1, 0.1), a polygon point
(x, y) maps to ((x - x1) * M / w, (y - y1) * M / h); every polygon of the object is
rasterised with pycocotools (``frPyObjects`` / ``merge`` / ``decode``: a pixel is inside when
COCO's polygon rasteriser says so) and the object's mask is their union. Only foreground RoIs
(label in [0, num_classes)) get a target; PaddleDetection 2.x's ``MaskAssigner`` does the same.

``fluid: true`` is PaddleDetection v0.1's ``generate_mask_labels`` (fluid-era convention
``mask_labels: "fluid"``, declared in ``conventions``): each RoI takes the object whose
polygons' bounding box (min/max of all its points) has the highest IoU with it, counted with
+1 widths (``fluid_iou``; the first on ties), and w, h are clamped at 1 pixel, not 0.1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import paddle
from pycocotools import mask as mask_util

from ppdet.config.registry import register
from ppdet.modeling.assigners.max_iou import fluid_iou
from ppdet.ops.boxes import box_iou

__all__ = ["MaskAssigner", "polygon_boxes", "polygons_to_mask"]


def polygons_to_mask(
    polygons: Sequence[np.ndarray], box: np.ndarray, resolution: int, min_size: float = 0.1
) -> np.ndarray:
    """polygons: list of [2K] (x1, y1, x2, y2, ...) input pixels; box [4] x1y1x2y2 ->
    [resolution, resolution] uint8 mask of the polygons inside the box (module docstring);
    the box's w and h are clamped at ``min_size`` (2.x 0.1, fluid 1)."""
    box = np.asarray(box, "float32")
    # the scale factors are float32 (box arithmetic), the points float64: pycocotools
    # rasterises at 5x and rounds, so ties (x * 5 = k + 0.5) depend on these roundings
    w = max(box[2] - box[0], np.float32(min_size))
    h = max(box[3] - box[1], np.float32(min_size))
    ratio_w, ratio_h = float(np.float32(resolution) / w), float(np.float32(resolution) / h)
    scaled = []
    for poly in polygons:
        p = np.asarray(poly, "float64").reshape(-1, 2).copy()
        if p.shape[0] < 3:  # not a polygon (pycocotools needs >= 3 points)
            continue
        p[:, 0] = (p[:, 0] - float(box[0])) * ratio_w
        p[:, 1] = (p[:, 1] - float(box[1])) * ratio_h
        scaled.append(p.flatten().tolist())
    if not scaled:
        return np.zeros((resolution, resolution), "uint8")
    rles = mask_util.frPyObjects(scaled, resolution, resolution)
    return np.asarray(mask_util.decode(mask_util.merge(rles)), "uint8")  # [M, M]


def polygon_boxes(objects: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """The bounding box of each object's polygons (every point of all its [2K] polygons):
    M objects -> [M, 4] float32 x1y1x2y2; an object without points gives zeros."""
    out = np.zeros((len(objects), 4), "float32")
    for i, polys in enumerate(objects):
        points = [np.asarray(p, "float32").reshape(-1, 2) for p in polys]
        points = [p for p in points if p.size]
        if points:
            xy = np.concatenate(points)
            out[i] = [xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()]
    return out


@register("head")
class MaskAssigner:
    """Mask targets of the foreground RoIs (module docstring).

    ``assigner(rois, rois_num, gt_boxes, gt_polys)`` with rois [F, 4] (the foreground RoIs of
    the box head's sample, stacked image by image), rois_num [B], per-image gt_boxes[b]
    [M_b, 4] and gt_polys[b] (M_b objects, each a list of [2K] polygons) -> targets [F, M, M]
    float32 0/1. Each RoI takes the gt of highest IoU (first on ties: the object BBoxAssigner
    matched it to; ``fluid``: v0.1's matching, module docstring). Rasterising polygons runs on
    the host (pycocotools): training only.
    """

    __shared__ = ["num_classes"]

    def __init__(
        self, mask_resolution: int = 14, num_classes: int = 80, fluid: bool = False
    ) -> None:
        self.mask_resolution = int(mask_resolution)
        self.num_classes = int(num_classes)
        self.fluid = bool(fluid)
        self.conventions = {"mask_labels": "fluid"} if self.fluid else {}

    @paddle.no_grad()
    def __call__(
        self,
        rois: paddle.Tensor,
        rois_num: paddle.Tensor,
        gt_boxes: Sequence[paddle.Tensor],
        gt_polys: Sequence[Sequence[Sequence[np.ndarray]]],
    ) -> paddle.Tensor:
        if len(gt_polys) != rois_num.shape[0]:
            raise ValueError(
                f"MaskAssigner: gt_poly has {len(gt_polys)} images, the batch {rois_num.shape[0]}; "
                "load the dataset with load_segm: true"
            )
        res = self.mask_resolution
        ends = np.cumsum(rois_num.numpy().reshape(-1)).tolist()
        targets = []
        for end, n, gt, polys in zip(
            ends, rois_num.numpy().tolist(), gt_boxes, gt_polys, strict=True
        ):
            if n == 0:
                continue
            boxes = rois[end - n : end]  # [F_b, 4] this image's foreground RoIs
            if gt.shape[0] == 0 or len(polys) < gt.shape[0]:
                raise ValueError(
                    f"MaskAssigner: {boxes.shape[0]} foreground RoIs but {gt.shape[0]} gt boxes "
                    f"and {len(polys)} gt_poly objects"
                )
            if self.fluid:  # v0.1: +1 IoU with the bounding boxes of the polygons
                iou = fluid_iou(boxes, paddle.to_tensor(polygon_boxes(polys[: gt.shape[0]])))
            else:
                iou = box_iou(boxes, gt)
            matched = iou.argmax(axis=1).numpy()  # [F_b]
            box_np = boxes.numpy()
            min_size = 1.0 if self.fluid else 0.1
            targets += [
                polygons_to_mask(polys[m], b, res, min_size) for m, b in zip(matched, box_np)
            ]
        if not targets:
            return paddle.zeros([0, res, res], "float32")
        return paddle.to_tensor(np.stack(targets).astype("float32"))
