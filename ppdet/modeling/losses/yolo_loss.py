"""YOLOv3 loss, building its own targets from the padded ground truth of a batch.

Target assignment (numpy, vectorised over all boxes of the batch), for each real gt box
(``pad_gt_mask`` 1, positive width and height):

1. best anchor: the anchor of largest IoU with the box when both are centred at the origin
   (IoU of the widths/heights), over *all* anchors of all levels; the box is assigned only to
   the level whose ``anchor_mask`` holds that anchor, as slot ``a`` of the level;
2. cell: column ``i = floor(cx / stride)``, row ``j = floor(cy / stride)`` of the box centre;
3. targets: ``tx = cx / stride - i``, ``ty = cy / stride - j`` (offset in the cell, 0..1),
   ``tw = log(w / anchor_w)``, ``th = log(h / anchor_h)``, weight ``2 - (w / W) * (h / H)``
   (small boxes count more; W, H = network input size), objectness ``gt_score``, its class.
   When several boxes land on the same (image, anchor, cell), the last one gives the box
   targets and the score, and the class target has the classes of all of them set (as
   PaddleDetection's Gt2YoloTarget does).

Per level, with ``s = gt_score`` of the assigned box:

- ``loss_xy``: BCE(sigmoid logits tx, ty; targets) * weight * s (L1 on the scaled sigmoid when
  ``scale_x_y`` != 1);
- ``loss_wh``: |tw_pred - tw| + |th_pred - th|, times weight * s;
- ``loss_obj``: BCE on the objectness logit of every (anchor, cell): target 1 weighted by s
  at assigned cells; target 0 elsewhere, except predictions whose decoded box has IoU >
  ``ignore_thresh`` with some gt box of the image, which are ignored;
- ``loss_cls``: per-class BCE with (multi-)hot targets (label smoothing optional), times s.

Each is summed over the levels, anchors and cells and divided by the batch size; ``loss`` is
their sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.ops.boxes import box_cxcywh_to_xyxy, box_iou

__all__ = ["LevelTargets", "YOLOv3Loss", "build_targets"]

LOSS_NAMES = ("loss_xy", "loss_wh", "loss_obj", "loss_cls")


@dataclass
class LevelTargets:
    """The P positive predictions of one pyramid level.

    index: [P, 4] int64 (image b, anchor slot a within the level, row j, column i).
    txy: [P, 2] float32 centre offset inside the cell, in [0, 1].
    twh: [P, 2] float32 log(w / anchor_w), log(h / anchor_h).
    weight: [P] float32 ``2 - w * h`` with w, h as fractions of the input size.
    score: [P] float32 gt_score of the box.
    classes: [P, C] float32 class target, 1 for the class of the box (of every box, when
        several share the prediction), else 0.
    """

    index: np.ndarray
    txy: np.ndarray
    twh: np.ndarray
    weight: np.ndarray
    score: np.ndarray
    classes: np.ndarray


def best_anchors(gt_wh: paddle.Tensor, anchors: paddle.Tensor) -> paddle.Tensor:
    """Index of the anchor of largest width/height IoU with each box (first one on ties).

    gt_wh: [G, 2] and anchors: [K, 2], (w, h) in the same unit. Returns [G] int64.
    """
    centred_gt = box_cxcywh_to_xyxy(paddle.concat([paddle.zeros_like(gt_wh), gt_wh], axis=-1))
    centred_an = box_cxcywh_to_xyxy(paddle.concat([paddle.zeros_like(anchors), anchors], axis=-1))
    return box_iou(centred_gt, centred_an).argmax(axis=-1)  # [G]


def build_targets(
    gt_bbox: np.ndarray,
    gt_class: np.ndarray,
    gt_score: np.ndarray,
    valid: np.ndarray,
    anchors: Sequence[Sequence[float]],
    anchor_masks: Sequence[Sequence[int]],
    strides: Sequence[int],
    grid_shapes: Sequence[tuple[int, int]],
    input_hw: tuple[int, int],
    num_classes: int,
) -> list[LevelTargets]:
    """Assign gt boxes to (level, anchor, cell) as described in the module docstring.

    gt_bbox: [B, M, 4] x1y1x2y2 pixels of the network input; gt_class: [B, M] int;
    gt_score: [B, M] float; valid: [B, M] bool (real box with positive size).
    anchors: [K, 2] (w, h) pixels; anchor_masks: per level, indices into anchors.
    strides / grid_shapes: per level, the stride (pixels) and the output map size (H, W).
    input_hw: (H, W) of the network input, pixels; num_classes: C.
    """
    in_h, in_w = input_hw
    b_idx, g_idx = np.nonzero(valid)  # [G] each: image and slot of every real box
    boxes = gt_bbox[b_idx, g_idx].astype(np.float64)  # [G, 4]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    anchors_np = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)  # [K, 2]
    if len(boxes):
        gt_wh = paddle.to_tensor(np.stack([w, h], axis=1), dtype="float32")  # [G, 2]
        best = best_anchors(gt_wh, paddle.to_tensor(anchors_np, dtype="float32")).numpy()
    else:
        best = np.zeros([0], dtype=np.int64)

    targets = []
    for mask, stride, (grid_h, grid_w) in zip(anchor_masks, strides, grid_shapes):
        slot_of = np.full(len(anchors_np), -1)  # anchor index -> slot in this level, or -1
        slot_of[list(mask)] = np.arange(len(mask))
        slot = slot_of[best]  # [G]
        sel = np.nonzero(slot >= 0)[0]
        gx, gy = cx[sel] / stride, cy[sel] / stride  # centre in grid units
        col = np.clip(np.floor(gx), 0, grid_w - 1).astype(np.int64)
        row = np.clip(np.floor(gy), 0, grid_h - 1).astype(np.int64)
        index = np.stack([b_idx[sel], slot[sel], row, col], axis=1).astype(np.int64)  # [n, 4]

        # several boxes on one (image, anchor, cell): the last one gives the box targets, the
        # class target gets all their classes
        flat = ((index[:, 0] * len(mask) + index[:, 1]) * grid_h + index[:, 2]) * grid_w
        flat = flat + index[:, 3]  # [n] one id per prediction
        unique_ids, group = np.unique(flat, return_inverse=True)  # group: [n] -> unique id
        last = np.full(len(unique_ids), -1)
        np.maximum.at(last, group, np.arange(len(flat)))  # last box of each prediction
        order = np.argsort(last)  # predictions in the order of their last box
        labels = gt_class[b_idx[sel], g_idx[sel]].astype(np.int64)  # [n]
        classes = np.zeros([len(unique_ids), num_classes], np.float32)
        classes[group, labels] = 1.0
        keep = last[order]
        sel, index, col, row = sel[keep], index[keep], col[keep], row[keep]  # n -> P
        gx, gy = gx[keep], gy[keep]

        anchor_wh = anchors_np[best[sel]]  # [P, 2]
        targets.append(
            LevelTargets(
                index=index,
                txy=np.stack([gx - col, gy - row], axis=1).astype(np.float32),
                twh=np.log(np.stack([w[sel], h[sel]], axis=1) / anchor_wh).astype(np.float32),
                weight=(2.0 - (w[sel] / in_w) * (h[sel] / in_h)).astype(np.float32),
                score=gt_score[b_idx[sel], g_idx[sel]].astype(np.float32),
                classes=classes[order],
            )
        )
    return targets


@register("loss")
class YOLOv3Loss(nn.Layer):
    """YOLOv3 loss (see the module docstring).

    forward(outputs, batch, anchors, anchor_masks) -> {"loss", "loss_xy", "loss_wh",
    "loss_obj", "loss_cls"}, scalars. outputs[i]: [B, A_i * (5 + C), H_i, W_i] from
    YOLOv3Head; batch: ``image`` [B, 3, H, W], ``gt_bbox`` [B, M, 4] x1y1x2y2 pixels,
    ``gt_class`` [B, M, 1], optional ``gt_score`` [B, M, 1] (default 1) and ``pad_gt_mask``
    [B, M, 1] (default: boxes of positive size).

    Args:
        ignore_thresh: IoU above which a prediction is not pushed towards background.
        label_smooth: class targets 1 - d and d, d = min(1 / C, 1 / 40), instead of 1 and 0.
        downsample: stride of each level, deepest first.
        scale_x_y: centre sigmoid scale (YOLOv4's grid sensitivity); 1 is plain YOLOv3.
    """

    def __init__(
        self,
        ignore_thresh: float = 0.7,
        label_smooth: bool = False,
        downsample: Sequence[int] = (32, 16, 8),
        scale_x_y: float = 1.0,
    ):
        super().__init__()
        self.ignore_thresh = ignore_thresh
        self.label_smooth = label_smooth
        self.downsample = list(downsample)
        self.scale_x_y = scale_x_y

    def forward(
        self,
        outputs: Sequence[paddle.Tensor],
        batch: dict[str, paddle.Tensor],
        anchors: Sequence[Sequence[float]],
        anchor_masks: Sequence[Sequence[int]],
    ) -> dict[str, paddle.Tensor]:
        if len(outputs) != len(self.downsample):
            raise ValueError(f"{len(outputs)} outputs but downsample has {len(self.downsample)}")
        in_h, in_w = batch["image"].shape[2:]
        gt_bbox = batch["gt_bbox"].astype("float32")  # [B, M, 4]
        size_ok = (gt_bbox[..., 2] > gt_bbox[..., 0]) & (gt_bbox[..., 3] > gt_bbox[..., 1])
        pad = batch.get("pad_gt_mask")
        valid = size_ok if pad is None else size_ok & (pad[..., 0] > 0)  # [B, M]
        score = batch.get("gt_score")
        score_np = np.ones(valid.shape, np.float32) if score is None else score[..., 0].numpy()
        targets = build_targets(
            gt_bbox.numpy(),
            batch["gt_class"][..., 0].numpy(),
            score_np,
            valid.numpy(),
            anchors,
            anchor_masks,
            self.downsample,
            [tuple(out.shape[2:]) for out in outputs],
            (in_h, in_w),
            num_classes=outputs[0].shape[1] // len(anchor_masks[0]) - 5,
        )
        gt_boxes = gt_bbox * valid.astype("float32").unsqueeze(-1)  # padding -> zero boxes, IoU 0

        losses = {name: paddle.zeros([], dtype="float32") for name in LOSS_NAMES}
        for out, target, mask, stride in zip(outputs, targets, anchor_masks, self.downsample):
            level_anchors = [anchors[k] for k in mask]
            level = self._level_loss(out, target, level_anchors, stride, gt_boxes)
            for name in LOSS_NAMES:
                losses[name] = losses[name] + level[name]
        batch_size = gt_bbox.shape[0]
        losses = {name: value / batch_size for name, value in losses.items()}
        losses["loss"] = paddle.add_n([losses[name] for name in LOSS_NAMES])
        return losses

    def _level_loss(
        self,
        out: paddle.Tensor,
        target: LevelTargets,
        anchors: Sequence[Sequence[float]],
        stride: int,
        gt_boxes: paddle.Tensor,
    ) -> dict[str, paddle.Tensor]:
        """Summed (not yet batch-averaged) losses of one level. out: [B, A*(5+C), H, W]."""
        batch, channels, grid_h, grid_w = out.shape
        num_anchors = len(anchors)
        num_classes = channels // num_anchors - 5
        pred = out.reshape([batch, num_anchors, 5 + num_classes, grid_h, grid_w])
        pred = pred.transpose([0, 1, 3, 4, 2])  # [B, A, H, W, 5 + C]

        # objectness: positives, and negatives that no gt box overlaps above ignore_thresh
        positive = np.zeros([batch, num_anchors, grid_h, grid_w], np.float32)
        pos_score = np.zeros_like(positive)
        b, a, j, i = target.index.T
        positive[b, a, j, i] = 1.0
        pos_score[b, a, j, i] = target.score
        positive_t = paddle.to_tensor(positive)
        keep_negative = self._not_ignored(pred.detach(), anchors, stride, gt_boxes)
        obj_weight = paddle.to_tensor(pos_score) + (1.0 - positive_t) * keep_negative
        obj_bce = F.binary_cross_entropy_with_logits(pred[..., 4], positive_t, reduction="none")
        losses = {"loss_obj": (obj_bce * obj_weight).sum()}

        if len(target.index) == 0:
            zero = paddle.zeros([], dtype="float32")
            losses.update(loss_xy=zero, loss_wh=zero, loss_cls=zero)
            return losses
        matched = paddle.gather_nd(pred, paddle.to_tensor(target.index))  # [P, 5 + C]
        score = paddle.to_tensor(target.score).unsqueeze(-1)  # [P, 1]
        box_weight = paddle.to_tensor(target.weight).unsqueeze(-1) * score  # [P, 1]

        txy = paddle.to_tensor(target.txy)
        if self.scale_x_y == 1.0:
            xy = F.binary_cross_entropy_with_logits(matched[:, :2], txy, reduction="none")
        else:
            s = self.scale_x_y
            xy = (F.sigmoid(matched[:, :2]) * s - 0.5 * (s - 1.0) - txy).abs()
        wh = (matched[:, 2:4] - paddle.to_tensor(target.twh)).abs()

        if self.label_smooth:
            delta = min(1.0 / num_classes, 1.0 / 40)
            on, off = 1.0 - delta, delta
        else:
            on, off = 1.0, 0.0
        tcls = target.classes * (on - off) + off  # [P, C]
        cls = F.binary_cross_entropy_with_logits(
            matched[:, 5:], paddle.to_tensor(tcls), reduction="none"
        )
        losses["loss_xy"] = (xy * box_weight).sum()
        losses["loss_wh"] = (wh * box_weight).sum()
        losses["loss_cls"] = (cls * score).sum()
        return losses

    def _not_ignored(
        self,
        pred: paddle.Tensor,
        anchors: Sequence[Sequence[float]],
        stride: int,
        gt_boxes: paddle.Tensor,
    ) -> paddle.Tensor:
        """1.0 where the decoded prediction's best IoU with the image's gt boxes is at most
        ``ignore_thresh``, else 0.0. pred: [B, A, H, W, 5 + C]; gt_boxes: [B, M, 4] pixels
        (zero rows for padding). Returns [B, A, H, W] float32."""
        batch, num_anchors, grid_h, grid_w = pred.shape[:4]
        if gt_boxes.shape[1] == 0:
            return paddle.ones([batch, num_anchors, grid_h, grid_w], dtype="float32")
        s = self.scale_x_y
        col = paddle.arange(grid_w, dtype="float32").reshape([1, 1, 1, grid_w])
        row = paddle.arange(grid_h, dtype="float32").reshape([1, 1, grid_h, 1])
        anchor_wh = paddle.to_tensor(anchors, dtype="float32").reshape([1, num_anchors, 1, 1, 2])
        cx = (col + F.sigmoid(pred[..., 0]) * s - 0.5 * (s - 1.0)) * stride  # [B, A, H, W]
        cy = (row + F.sigmoid(pred[..., 1]) * s - 0.5 * (s - 1.0)) * stride
        wh = paddle.exp(pred[..., 2:4]) * anchor_wh  # [B, A, H, W, 2]
        boxes = paddle.concat([cx.unsqueeze(-1), cy.unsqueeze(-1), wh], axis=-1)
        boxes = box_cxcywh_to_xyxy(boxes.reshape([batch, -1, 4]))  # [B, A*H*W, 4]
        best_iou = box_iou(boxes, gt_boxes).max(axis=-1)  # [B, A*H*W]
        keep = (best_iou <= self.ignore_thresh).astype("float32")
        return keep.reshape([batch, num_anchors, grid_h, grid_w])
