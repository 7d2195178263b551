"""RPN training targets (Ren et al. 2015), PaddleDetection 2.x's RPNTargetAssign numbers.

Per image: anchors are matched to the gt boxes by ``max_iou_assign`` (IoU >= 0.7 positive,
< 0.3 negative, the best anchors of each gt box positive too), then ``batch_size_per_im``
(256) of them are sampled with at most ``fg_fraction`` (half) positive; every other anchor is
ignored. Regression targets are ``encode_deltas(anchor, matched gt, weights)``.

Fluid-era (PaddleDetection v0.1, fluid's ``rpn_target_assign``) options, declared in
``conventions`` (``ppdet.modeling.conventions``):

- ``straddle_thresh`` >= 0 (v0.1: 0): an anchor is used only when it lies inside the image
  widened by that many pixels (x1 >= -t, y1 >= -t, x2 < w + t, y2 < h + t, with (h, w) the
  resized image, ``im_shape``); the others get no label and no target. Negative (the
  default, and fluid's own "off" value): every anchor is used.
- ``fluid: true``: IoUs with +1 widths (``fluid_iou``); positives are the anchors with
  IoU >= ``positive_overlap`` or within 1e-5 of some gt box's best IoU; at most
  ``batch_size_per_im * fg_fraction`` of them are sampled first, then
  ``batch_size_per_im`` - (that number) of the anchors with IoU < ``negative_overlap``, and a
  sampled negative stays negative even if it was sampled as a positive; the deltas are coded
  with +1 widths (``encode_deltas(legacy_plus_one=True)``, fluid's ``BoxToDelta``).
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle

from ppdet.modeling.assigners.max_iou import fluid_iou, max_iou_assign, near_best_of_a_gt
from ppdet.modeling.assigners.sampler import pick, subsample_labels
from ppdet.modeling.coders.delta_bbox import encode_deltas
from ppdet.ops.boxes import box_iou

__all__ = ["RPNTargetAssign", "inside_image"]


def inside_image(
    anchors: paddle.Tensor, im_shape: paddle.Tensor, straddle_thresh: float
) -> paddle.Tensor:
    """anchors [N, 4] x1y1x2y2, im_shape [2] (h, w) -> [N] bool: the anchor does not cross
    the image border by more than ``straddle_thresh`` pixels (fluid's straddle filter)."""
    t = float(straddle_thresh)
    h, w = im_shape[0].astype(anchors.dtype), im_shape[1].astype(anchors.dtype)
    return (
        (anchors[:, 0] >= -t)
        & (anchors[:, 1] >= -t)
        & (anchors[:, 2] < w + t)
        & (anchors[:, 3] < h + t)
    )


class RPNTargetAssign:
    """``assign(anchors [N, 4], gt_boxes [M, 4], im_shape [2] (h, w) or None)`` (one image,
    x1y1x2y2 input pixels) -> (labels [N] int32: 1 positive, 0 negative, -1 not sampled or
    outside the image; deltas [N, 4] targets, zero without gt). Config keys are 2.x's, plus
    v0.1's ``straddle_thresh`` and ``fluid`` (module docstring); ``ignore_thresh`` only -1
    (no crowd handling). ``im_shape`` is needed when ``straddle_thresh`` >= 0."""

    def __init__(
        self,
        batch_size_per_im: int = 256,
        fg_fraction: float = 0.5,
        positive_overlap: float = 0.7,
        negative_overlap: float = 0.3,
        ignore_thresh: float = -1.0,
        use_random: bool = True,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        straddle_thresh: float = -1.0,
        fluid: bool = False,
    ) -> None:
        if ignore_thresh > 0:
            raise ValueError("RPNHead.rpn_target_assign: ignore_thresh > 0 is not implemented")
        if not 0 <= negative_overlap <= positive_overlap <= 1:
            raise ValueError(
                "RPNHead.rpn_target_assign: need 0 <= negative_overlap <= positive_overlap <= 1"
            )
        self.batch_size_per_im = int(batch_size_per_im)
        self.fg_fraction = float(fg_fraction)
        self.positive_overlap = float(positive_overlap)
        self.negative_overlap = float(negative_overlap)
        self.use_random = bool(use_random)
        self.weights = [float(w) for w in weights]
        self.straddle_thresh = float(straddle_thresh)
        self.fluid = bool(fluid)
        self.conventions: dict[str, object] = {}
        if self.fluid:
            self.conventions["rpn_target_assign"] = "fluid"
        if self.straddle_thresh >= 0:
            self.conventions["rpn_straddle_thresh"] = self.straddle_thresh

    @paddle.no_grad()
    def __call__(
        self,
        anchors: paddle.Tensor,
        gt_boxes: paddle.Tensor,
        im_shape: paddle.Tensor | None = None,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        n = anchors.shape[0]
        if self.straddle_thresh < 0:
            return self._assign(anchors, gt_boxes)
        if im_shape is None:
            raise ValueError(
                "RPNHead.rpn_target_assign: straddle_thresh >= 0 needs the image size "
                "(im_shape); set straddle_thresh: -1 to use every anchor"
            )
        inside = paddle.nonzero(inside_image(anchors, im_shape, self.straddle_thresh)).flatten()
        labels = paddle.full([n], -1, "int32")
        deltas = paddle.zeros_like(anchors)
        if inside.shape[0] == 0:
            return labels, deltas
        sub_labels, sub_deltas = self._assign(paddle.gather(anchors, inside), gt_boxes)
        labels = paddle.scatter(labels, inside, sub_labels)
        return labels, paddle.scatter(deltas, inside, sub_deltas)

    def _assign(
        self, anchors: paddle.Tensor, gt_boxes: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Labels and deltas of the anchors that take part (all, or those inside)."""
        if gt_boxes.shape[0] == 0:  # every anchor is background
            labels = self._sampled(paddle.zeros([anchors.shape[0]], "int32"))
            return labels, paddle.zeros_like(anchors)
        if self.fluid:
            iou = fluid_iou(anchors, gt_boxes)  # [N, M]
            matched, labels = iou.argmax(axis=1), self._fluid_labels(iou)
        else:
            matched, match = max_iou_assign(
                box_iou(anchors, gt_boxes), self.positive_overlap, self.negative_overlap, True
            )
            labels = self._sampled(match)
        deltas = encode_deltas(
            anchors, paddle.gather(gt_boxes, matched), self.weights, legacy_plus_one=self.fluid
        )  # [N, 4]
        return labels, deltas

    def _sampled(self, match: paddle.Tensor) -> paddle.Tensor:
        """2.x's sampling of max-IoU labels [N] (1 / 0 / -1) -> labels [N]."""
        fg, bg = subsample_labels(
            match, self.batch_size_per_im, self.fg_fraction, 0, self.use_random
        )
        labels = paddle.full([match.shape[0]], -1, "int32")
        if bg.shape[0]:
            labels = paddle.scatter(labels, bg, paddle.zeros([bg.shape[0]], "int32"))
        if fg.shape[0]:
            labels = paddle.scatter(labels, fg, paddle.ones([fg.shape[0]], "int32"))
        return labels

    def _fluid_labels(self, iou: paddle.Tensor) -> paddle.Tensor:
        """fluid's sampling (module docstring) from the +1 IoU matrix [N, M] -> labels [N]."""
        n = iou.shape[0]
        best = iou.max(axis=1)  # [N]
        positive = (best >= self.positive_overlap) | near_best_of_a_gt(iou, fluid=True)
        fg = pick(
            paddle.nonzero(positive).flatten(),
            int(self.batch_size_per_im * self.fg_fraction),
            self.use_random,
        )
        bg = pick(
            paddle.nonzero(best < self.negative_overlap).flatten(),
            self.batch_size_per_im - fg.shape[0],
            self.use_random,
        )
        labels = paddle.full([n], -1, "int32")
        if fg.shape[0]:
            labels = paddle.scatter(labels, fg, paddle.ones([fg.shape[0]], "int32"))
        if bg.shape[0]:  # after the positives: a sampled negative wins
            labels = paddle.scatter(labels, bg, paddle.zeros([bg.shape[0]], "int32"))
        return labels
