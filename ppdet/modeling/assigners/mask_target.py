"""Mask R-CNN mask targets: the polygons of each foreground RoI's matched gt object, cropped
and scaled to the RoI and rasterised at ``mask_resolution`` x ``mask_resolution``.

For a RoI (x1, y1, x2, y2) with w = max(x2 - x1, 0.1), h = max(y2 - y1, 0.1), a polygon point
(x, y) maps to ((x - x1) * M / w, (y - y1) * M / h); every polygon of the object is
rasterised with pycocotools (``frPyObjects`` / ``merge`` / ``decode``: a pixel is inside when
COCO's polygon rasteriser says so) and the object's mask is their union. Only foreground RoIs
(label in [0, num_classes)) get a target; PaddleDetection 2.x's ``MaskAssigner`` does the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import paddle
from pycocotools import mask as mask_util

from ppdet.config.registry import register
from ppdet.ops.boxes import box_iou

__all__ = ["MaskAssigner", "polygons_to_mask"]


def polygons_to_mask(
    polygons: Sequence[np.ndarray], box: np.ndarray, resolution: int
) -> np.ndarray:
    """polygons: list of [2K] (x1, y1, x2, y2, ...) input pixels; box [4] x1y1x2y2 ->
    [resolution, resolution] uint8 mask of the polygons inside the box (module docstring)."""
    box = np.asarray(box, "float32")
    # the scale factors are float32 (box arithmetic), the points float64: pycocotools
    # rasterises at 5x and rounds, so ties (x * 5 = k + 0.5) depend on these roundings
    w = max(box[2] - box[0], np.float32(0.1))
    h = max(box[3] - box[1], np.float32(0.1))
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


@register("head")
class MaskAssigner:
    """Mask targets of the sampled RoIs (module docstring).

    ``assigner(rois, labels, gt_boxes, gt_polys)`` with per-image lists rois[b] [S_b, 4] (the
    sampled RoIs), labels[b] [S_b] int (``num_classes`` background, -1 ignored), gt_boxes[b]
    [M_b, 4], gt_polys[b] (M_b objects, each a list of [2K] polygons) -> (foreground index
    [F] int64 into the concatenated RoIs, foreground rois list [F_b, 4], rois_num [B] int32,
    classes [F] int64, targets [F, M, M] float32 0/1). Each foreground RoI takes the gt of
    highest IoU (first on ties: the object BBoxAssigner matched it to).
    """

    __shared__ = ["num_classes"]

    def __init__(self, mask_resolution: int = 14, num_classes: int = 80) -> None:
        self.mask_resolution = int(mask_resolution)
        self.num_classes = int(num_classes)

    @paddle.no_grad()
    def __call__(
        self,
        rois: Sequence[paddle.Tensor],
        labels: Sequence[paddle.Tensor],
        gt_boxes: Sequence[paddle.Tensor],
        gt_polys: Sequence[Sequence[Sequence[np.ndarray]]],
    ) -> tuple[paddle.Tensor, list[paddle.Tensor], paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        if len(gt_polys) != len(rois):
            raise ValueError(
                f"MaskAssigner: gt_poly has {len(gt_polys)} images, the batch {len(rois)}; "
                "load the dataset with load_segm: true"
            )
        res = self.mask_resolution
        index, fg_rois, nums, classes, targets = [], [], [], [], []
        start = 0
        for r, lab, gt, polys in zip(rois, labels, gt_boxes, gt_polys, strict=True):
            lab = lab.astype("int64")
            fg = paddle.nonzero((lab >= 0) & (lab < self.num_classes)).flatten()  # [F_b]
            if fg.shape[0] and gt.shape[0]:
                if len(polys) < gt.shape[0]:
                    raise ValueError(
                        f"MaskAssigner: {gt.shape[0]} gt boxes but {len(polys)} gt_poly objects"
                    )
                boxes = paddle.gather(r, fg)  # [F_b, 4]
                matched = box_iou(boxes, gt).argmax(axis=1).numpy()  # [F_b]
                box_np = boxes.numpy()
                masks = [polygons_to_mask(polys[m], b, res) for m, b in zip(matched, box_np)]
                index.append(fg + start)
                fg_rois.append(boxes)
                classes.append(paddle.gather(lab, fg))
                targets.append(np.stack(masks))
                nums.append(fg.shape[0])
            else:
                fg_rois.append(paddle.zeros([0, 4], "float32"))
                nums.append(0)
            start += r.shape[0]
        if not index:
            empty = paddle.zeros([0], "int64")
            return (
                empty,
                fg_rois,
                paddle.to_tensor(nums, "int32"),
                empty,
                paddle.zeros([0, res, res], "float32"),
            )
        return (
            paddle.concat(index),
            fg_rois,
            paddle.to_tensor(nums, "int32"),
            paddle.concat(classes),
            paddle.to_tensor(np.concatenate(targets).astype("float32")),
        )
