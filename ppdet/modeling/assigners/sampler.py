"""Fixed-size foreground/background sampling (R-CNN's minibatch sampling), and the R-CNN
RoI sampler ``BBoxAssigner`` built on it.

``subsample_labels``: from per-item labels (``-1`` ignored, ``bg_label`` background, anything
else foreground) pick at most ``num_samples * fg_fraction`` foreground items and fill the
rest of ``num_samples`` with background items. ``use_random`` picks uniformly at random
(Paddle's RNG: ``paddle.seed`` makes it repeatable), otherwise the first ones in index order.

``BBoxAssigner`` (per image): the RPN proposals plus the real gt boxes (appended when there
are any) are matched to the gt boxes by IoU (``fg_thresh``: foreground with the matched
gt's class, below ``bg_thresh``: background = class ``num_classes``, in between ignored;
no low-quality rescue), then ``batch_size_per_im`` of them are sampled with ``fg_fraction``
foreground. These are the numbers of PaddleDetection 2.x's BBoxAssigner.

``fluid: true`` is PaddleDetection v0.1's ``generate_proposal_labels`` (fluid-era convention
``proposal_labels: "fluid"``, declared in ``conventions``): the gt boxes are put *before* the
proposals, IoUs count widths with +1 pixel (``fluid_iou``), and a foreground RoI is matched to
the first gt box whose IoU is within 1e-5 of its best. The thresholds and the sampling are
the same (fg >= ``fg_thresh``, bg < ``bg_thresh``, at most ``batch_size_per_im *
fg_fraction`` foreground); the box head codes the regression targets with +1 widths
(``BBoxHead.plus_one``). Cascade R-CNN's later stages label with the same IoU (``label``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import paddle

from ppdet.config.registry import register
from ppdet.modeling.assigners.max_iou import FLUID_EPS, fluid_iou, max_iou_assign
from ppdet.ops.boxes import box_iou

__all__ = ["BBoxAssigner", "pick", "split_rois", "subsample_labels"]


def pick(indices: paddle.Tensor, num: int, use_random: bool) -> paddle.Tensor:
    """At most ``num`` of ``indices`` [K] int64: a uniformly random subset with ``use_random``
    (Paddle's RNG), else the first ``num``. Returns [min(K, num)]."""
    num = max(min(int(num), int(indices.shape[0])), 0)
    if use_random and indices.shape[0] > 0:
        indices = paddle.gather(indices, paddle.randperm(indices.shape[0]))
    return indices[:num]


def subsample_labels(
    labels: paddle.Tensor,
    num_samples: int,
    fg_fraction: float,
    bg_label: int = 0,
    use_random: bool = True,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """labels: [N] int. Returns (fg_inds [F] int64, bg_inds [G] int64), indices into labels:
    F = min(#foreground, int(num_samples * fg_fraction)), G = min(#background, num_samples - F).
    """
    positive = paddle.nonzero((labels != -1) & (labels != bg_label)).flatten()  # [P]
    negative = paddle.nonzero(labels == bg_label).flatten()  # [Q]
    fg = pick(positive, int(num_samples * fg_fraction), use_random)
    return fg, pick(negative, int(num_samples) - fg.shape[0], use_random)


@register("head")
class BBoxAssigner:
    """R-CNN RoI sampling (module docstring).

    ``assigner(rois, rois_num, gt_boxes, gt_classes)`` with rois [R, 4] proposals stacked image
    by image, rois_num [B], per-image lists gt_boxes[b]: [M_b, 4], gt_classes[b]: [M_b] int
    (x1y1x2y2 input pixels) -> (sampled rois [S, 4] image by image, rois_num [B] int32, labels
    [S] int32 (class, ``num_classes`` background), matched gt boxes [S, 4] (zeros without gt)).
    S_b <= batch_size_per_im; an image where nothing can be sampled keeps its first RoI,
    labelled -1 (ignored).
    ``ignore_thresh`` is accepted for config compatibility (only -1, i.e. no crowd handling,
    is implemented). ``cascade_iou`` holds the per-stage IoU thresholds Cascade R-CNN's later
    stages label with (``label``, fg = bg threshold, no sampling). ``fluid``: v0.1's
    ``generate_proposal_labels`` (module docstring).
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        batch_size_per_im: int = 512,
        fg_fraction: float = 0.25,
        fg_thresh: float = 0.5,
        bg_thresh: float = 0.5,
        ignore_thresh: float = -1.0,
        use_random: bool = True,
        cascade_iou: Sequence[float] = (0.5, 0.6, 0.7),
        num_classes: int = 80,
        fluid: bool = False,
    ) -> None:
        if ignore_thresh > 0:
            raise ValueError("BBoxAssigner: ignore_thresh > 0 (crowd boxes) is not implemented")
        if not 0 <= bg_thresh <= fg_thresh <= 1:
            raise ValueError(
                f"BBoxAssigner: need 0 <= bg_thresh <= fg_thresh <= 1, got {bg_thresh}, {fg_thresh}"
            )
        self.batch_size_per_im = int(batch_size_per_im)
        self.fg_fraction = float(fg_fraction)
        self.fg_thresh = float(fg_thresh)
        self.bg_thresh = float(bg_thresh)
        self.use_random = bool(use_random)
        self.num_classes = int(num_classes)
        self.cascade_iou = [float(v) for v in cascade_iou]
        self.fluid = bool(fluid)
        self.conventions = {"proposal_labels": "fluid"} if self.fluid else {}

    @paddle.no_grad()
    def label(
        self,
        rois: paddle.Tensor,
        gt_boxes: paddle.Tensor,
        gt_classes: paddle.Tensor,
        fg_thresh: float,
        bg_thresh: float,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """rois [N, 4], gt_boxes [M, 4], gt_classes [M] -> (matched gt index [N] int64, labels
        [N] int32: the matched gt's class if IoU >= fg_thresh, ``num_classes`` (background)
        below bg_thresh, -1 between). Without gt: matched 0, every label background."""
        if gt_boxes.shape[0] == 0:
            return paddle.zeros([rois.shape[0]], "int64"), paddle.full(
                [rois.shape[0]], self.num_classes, "int32"
            )
        if self.fluid:
            iou = fluid_iou(rois, gt_boxes)  # [N, M]
            near = (iou.max(axis=1, keepdim=True) - iou) < FLUID_EPS  # [N, M]
            matched = near.astype("int32").argmax(axis=1)  # the first gt near the best
            _, match = max_iou_assign(iou, fg_thresh, bg_thresh, allow_low_quality=False)
        else:
            matched, match = max_iou_assign(
                box_iou(rois, gt_boxes), fg_thresh, bg_thresh, allow_low_quality=False
            )  # [N], [N]
        labels = paddle.gather(gt_classes.astype("int32"), matched)  # [N]
        labels = paddle.where(match == 0, paddle.full_like(labels, self.num_classes), labels)
        labels = paddle.where(match == -1, paddle.full_like(labels, -1), labels)
        return matched, labels

    @paddle.no_grad()
    def sample_image(
        self, rois: paddle.Tensor, gt_boxes: paddle.Tensor, gt_classes: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """One image: (sampled rois [S, 4], labels [S] int32, matched gt boxes [S, 4])."""
        if gt_boxes.shape[0] > 0:  # gt boxes are proposals too (fluid: the first ones)
            rois = paddle.concat([gt_boxes, rois] if self.fluid else [rois, gt_boxes])
        matched, labels = self.label(rois, gt_boxes, gt_classes, self.fg_thresh, self.bg_thresh)
        fg, bg = subsample_labels(
            labels, self.batch_size_per_im, self.fg_fraction, self.num_classes, self.use_random
        )
        keep = paddle.concat([fg, bg])  # [S] foreground first
        if rois.shape[0] == 0:  # no proposals and no gt: nothing to sample
            return rois, labels, rois
        if keep.shape[0] == 0:  # nothing to learn from: one ignored RoI
            keep = paddle.zeros([1], "int64")
            labels = paddle.full_like(labels, -1)
        sampled = paddle.gather(rois, keep)
        if gt_boxes.shape[0] > 0:
            gt = paddle.gather(gt_boxes, paddle.gather(matched, keep))
        else:
            gt = paddle.zeros_like(sampled)
        return sampled, paddle.gather(labels, keep), gt

    def with_gt_first(
        self, rois: paddle.Tensor, rois_num: paddle.Tensor, gt_boxes: Sequence[paddle.Tensor]
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """rois [R, 4] stacked image by image (rois_num [B]) with each image's gt boxes
        gt_boxes[b] [M_b, 4] put before its RoIs -> (rois [R + sum M_b, 4], rois_num [B] int32):
        v0.1's Cascade R-CNN labels every stage's RoIs so (fluid's generate_proposal_labels)."""
        out = []
        for r, g in zip(split_rois(rois, rois_num), gt_boxes, strict=True):
            out += [g.astype(rois.dtype), r]
        nums = [int(g.shape[0]) + int(r.shape[0]) for r, g in zip(out[1::2], out[::2])]
        return paddle.concat(out), paddle.to_tensor(nums, "int32")

    def __call__(
        self,
        rois: paddle.Tensor,
        rois_num: paddle.Tensor,
        gt_boxes: Sequence[paddle.Tensor],
        gt_classes: Sequence[paddle.Tensor],
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        out_rois, out_labels, out_gt = [], [], []
        for r, g, c in zip(split_rois(rois, rois_num), gt_boxes, gt_classes, strict=True):
            s, lab, gt = self.sample_image(r, g, c)
            out_rois.append(s)
            out_labels.append(lab)
            out_gt.append(gt)
        rois_num = paddle.to_tensor([r.shape[0] for r in out_rois], "int32")
        return (
            paddle.concat(out_rois),
            rois_num,
            paddle.concat(out_labels),
            paddle.concat(out_gt),
        )


def split_rois(rois: paddle.Tensor, rois_num: paddle.Tensor) -> list[paddle.Tensor]:
    """rois [R, 4] stacked image by image, rois_num [B] -> B tensors [R_b, 4] (reads the
    counts on the host: training-time target assignment only)."""
    nums = rois_num.numpy().reshape(-1).tolist()
    ends = np.cumsum(nums).tolist()
    return [rois[end - n : end] for end, n in zip(ends, nums)]
