"""SSD training loss (Liu et al. 2016): prior matching, hard negative mining, smooth L1 + CE.

The numbers are those of PaddleDetection 2.x's ``SSDLoss``:

- Matching, per image: every prior takes the ground-truth box it overlaps most; it is positive
  when that IoU is at least ``overlap_threshold`` (0.5). Then every gt box is forced onto the
  prior it overlaps most (that prior becomes positive for it, whatever the IoU), so each gt
  has at least one prior. Padding rows (``pad_gt_mask`` 0) take no part.
- Targets: a positive prior's class is its gt's class, any other prior's the background index
  C (the last of the C + 1 logits); its box target is ``encode_deltas(prior, gt, 1 / var)``,
  var = ``prior_box_var`` (0.1, 0.1, 0.2, 0.2), priors and gt in fractions of the image.
- Hard negatives, per image: with P positives among N priors, the min(neg_pos_ratio * P, N)
  background priors of highest cross-entropy are kept (all N when P = 0); the rest are ignored.
- ``loss_conf = conf_loss_weight * CE summed over positives and kept negatives / Npos``,
  ``loss_loc = loc_loss_weight * smooth-L1 (beta 1) summed over the 4 deltas of the positives
  / Npos``, Npos = max(positives in the batch, 1); ``loss`` is their sum.

One deliberate difference: 2.x routes its zero padding rows through the matching and then
marks the very first prior (index 0) background in every image to undo their effect, so a
real box whose best prior is prior 0 loses it there. Here padding is masked out instead;
losses are equal whenever no gt box's best prior is prior 0 (the smallest, top-left one).
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.coders.delta_bbox import encode_deltas
from ppdet.ops.boxes import box_iou

__all__ = ["SSDLoss", "mine_hard_negatives", "ssd_match"]


@paddle.no_grad()
def ssd_match(
    gt_boxes: paddle.Tensor, priors: paddle.Tensor, overlap_threshold: float = 0.5
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Match the priors of one image to its gt boxes (module docstring).

    gt_boxes: [M, 4] x1y1x2y2 (real boxes only, M may be 0); priors: [N, 4], same unit.
    Returns (matched [N] int64: index of each prior's gt (0 when M = 0), positive [N] bool).
    """
    n = priors.shape[0]
    m = gt_boxes.shape[0]
    if m == 0:
        return paddle.zeros([n], "int64"), paddle.zeros([n], "bool")
    iou = box_iou(gt_boxes, priors)  # [M, N]
    best_iou = iou.max(axis=0)  # [N]
    matched = iou.argmax(axis=0)  # [N] int64
    positive = best_iou >= overlap_threshold
    best_prior = iou.argmax(axis=1)  # [M]: each gt's own best prior
    gt_index = paddle.arange(m, dtype="int64")
    # later gt boxes win a prior that several gt boxes call their best (scatter overwrite)
    matched = paddle.scatter(matched, best_prior, gt_index, overwrite=True)
    positive = paddle.scatter(
        positive.astype("int32"), best_prior, paddle.ones([m], "int32"), overwrite=True
    ).astype("bool")
    return matched, positive


@paddle.no_grad()
def mine_hard_negatives(
    conf_loss: paddle.Tensor, positive: paddle.Tensor, neg_pos_ratio: float = 3.0
) -> paddle.Tensor:
    """Priors that count in the classification loss: positives plus hard negatives.

    conf_loss: [B, N] cross-entropy of each prior against its target; positive: [B, N] bool.
    Per image with P positives, the min(neg_pos_ratio * P, N) negatives (N when P = 0) of
    highest loss are kept. Returns [B, N] bool.
    """
    n = conf_loss.shape[1]
    pos = positive.astype(conf_loss.dtype)
    neg_loss = paddle.where(positive, paddle.full_like(conf_loss, -1.0), conf_loss)  # [B, N]
    order = paddle.argsort(neg_loss, axis=1, descending=True)  # [B, N]
    rank = paddle.argsort(order, axis=1)  # [B, N]: 0 = hardest
    num_pos = pos.sum(axis=1, keepdim=True)  # [B, 1]
    num_neg = paddle.clip(num_pos * neg_pos_ratio, max=float(n))
    num_neg = paddle.where(num_pos > 0, num_neg, paddle.full_like(num_neg, float(n)))
    hard = (rank.astype(conf_loss.dtype) < num_neg) & ~positive
    return hard | positive


@register("loss")
class SSDLoss(nn.Layer):
    """SSD loss (module docstring).

    forward(box_deltas [B, N, 4], cls_logits [B, N, C + 1], priors [N, 4], gt_bbox [B, M, 4],
    gt_class [B, M, 1], gt_mask [B, M] bool) -> {"loss", "loss_conf", "loss_loc"} (2.x reports
    only "loss", their sum); priors and gt boxes in the same unit
    (fractions of the input image).

    Args:
        overlap_threshold: IoU at which a prior becomes positive.
        neg_pos_ratio: hard negatives per positive.
        loc_loss_weight, conf_loss_weight: weights of the two sums.
        prior_box_var: the SSD variances (box coder weights are their inverses).
    """

    def __init__(
        self,
        overlap_threshold: float = 0.5,
        neg_pos_ratio: float = 3.0,
        loc_loss_weight: float = 1.0,
        conf_loss_weight: float = 1.0,
        prior_box_var: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
    ):
        super().__init__()
        if len(prior_box_var) != 4 or any(v <= 0 for v in prior_box_var):
            raise ValueError(
                f"SSDLoss: prior_box_var must be 4 positive numbers, got {prior_box_var}"
            )
        self.overlap_threshold = float(overlap_threshold)
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.loc_loss_weight = float(loc_loss_weight)
        self.conf_loss_weight = float(conf_loss_weight)
        self.weights = [1.0 / float(v) for v in prior_box_var]

    @paddle.no_grad()
    def targets(
        self,
        priors: paddle.Tensor,
        gt_bbox: paddle.Tensor,
        gt_class: paddle.Tensor,
        gt_mask: paddle.Tensor,
        background: int,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """(box targets [B, N, 4] deltas (0 where not positive), labels [B, N] int64 with
        ``background`` for the non-positive priors)."""
        box_targets, labels = [], []
        for b in range(gt_bbox.shape[0]):
            keep = paddle.nonzero(gt_mask[b]).flatten()  # [m]
            if keep.shape[0] == 0:
                box_targets.append(paddle.zeros_like(priors))
                labels.append(paddle.full([priors.shape[0]], background, "int64"))
                continue
            boxes = paddle.gather(gt_bbox[b], keep)  # [m, 4]
            classes = paddle.gather(gt_class[b, :, 0], keep).astype("int64")  # [m]
            matched, positive = ssd_match(boxes, priors, self.overlap_threshold)
            gt_of = paddle.where(positive.unsqueeze(-1), paddle.gather(boxes, matched), priors)
            box_targets.append(encode_deltas(priors, gt_of, self.weights))
            cls_of = paddle.gather(classes, matched)
            labels.append(paddle.where(positive, cls_of, paddle.full_like(cls_of, background)))
        return paddle.stack(box_targets), paddle.stack(labels)

    def forward(
        self,
        box_deltas: paddle.Tensor,
        cls_logits: paddle.Tensor,
        priors: paddle.Tensor,
        gt_bbox: paddle.Tensor,
        gt_class: paddle.Tensor,
        gt_mask: paddle.Tensor,
    ) -> dict[str, paddle.Tensor]:
        background = cls_logits.shape[-1] - 1
        box_targets, labels = self.targets(priors, gt_bbox, gt_class, gt_mask, background)
        positive = labels != background  # [B, N]
        diff = paddle.where(
            positive.unsqueeze(-1), box_deltas - box_targets, paddle.zeros_like(box_deltas)
        )
        absdiff = diff.abs()
        loc = paddle.where(absdiff < 1.0, 0.5 * absdiff * absdiff, absdiff - 0.5).sum()
        ce = F.cross_entropy(cls_logits, labels.unsqueeze(-1), reduction="none").squeeze(-1)
        counted = mine_hard_negatives(ce.detach(), positive, self.neg_pos_ratio)  # [B, N]
        conf = (ce * counted.astype(ce.dtype)).sum()
        num_pos = paddle.clip(positive.astype("float32").sum(), min=1.0)
        loss_conf = self.conf_loss_weight * conf / num_pos
        loss_loc = self.loc_loss_weight * loc / num_pos
        return {"loss": loss_conf + loss_loc, "loss_conf": loss_conf, "loss_loc": loss_loc}
