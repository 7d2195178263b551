"""Cascade R-CNN box head (Cai & Vasconcelos 2018): three R-CNN box stages, each refining the
boxes of the one before, trained at rising IoU thresholds.

Stage k (k = 0, 1, 2) has its own ``TwoFCHead`` (``head.{k}.fc6/fc7``), class scores
``bbox_score_stage{k}`` [feat, C+1] (background LAST) and class-agnostic deltas
``bbox_delta_stage{k}`` [feat, 4], coded with ``bbox_weight[k]``: [10, 10, 5, 5],
[20, 20, 10, 10], [30, 30, 15, 15]. All stages share one ``RoIAlign``.

Stage 0 reads the RPN proposals; stage k > 0 reads stage k-1's RoIs moved by stage k-1's
deltas (detached), clipped to the input image (``im_shape``).

Training: stage 0 samples its RoIs with ``BBoxAssigner`` (gt appended, 512 per image, 25 %
foreground, IoU 0.5); stage k > 0 labels every refined RoI at IoU ``cascade_iou[k]`` (0.6,
0.7; no gt appended, no sampling), after dropping boxes left with no width or height (an image
left with none keeps its first). Each stage's losses are the Faster R-CNN box losses
(``rcnn_box_loss``), times ``stage_loss_weights[k]`` (default 1/3 each), named
``loss_bbox_cls_stage{k}`` / ``loss_bbox_reg_stage{k}``.

Eval: the class probabilities are the mean of the stages' softmax outputs; the boxes come from
the last stage's deltas on its RoIs (decoded by the post-process with [30, 30, 15, 15]).
These are the numbers of PaddleDetection 2.x's CascadeHead.

PaddleDetection v0.1's test path (fluid-era conventions, for converted v0.1 weights):
``plus_one`` refines the RoIs with +1 widths and no dw/dh clip (``box_coder_plus_one``),
``refine_unclipped`` leaves the refined RoIs unclipped (``cascade_refine_unclipped``), and
``scores_on_last_rois`` averages the softmax of all stage heads run on the *last* stage's RoI
features (``cascade_scores_on_last_rois``; 2.x: each head on its own stage's RoIs).
In training, ``plus_one`` also codes every stage's targets with +1 widths, and a
``BBoxAssigner`` with ``fluid`` (v0.1's generate_proposal_labels) puts the gt boxes before the
RoIs of every stage, not only the first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal

from ppdet.config.registry import register
from ppdet.modeling.assigners.sampler import BBoxAssigner, split_rois
from ppdet.modeling.coders.delta_bbox import decode_deltas
from ppdet.modeling.heads.bbox_head import RoIAlign, TwoFCHead, rcnn_box_loss
from ppdet.modeling.losses.smooth_l1 import check_beta
from ppdet.modeling.postprocess.bbox import count_per_image, image_of_rows

__all__ = ["CascadeHead", "CascadeTwoFCHead", "refine_rois"]

DEFAULT_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))


@register("head")
class CascadeTwoFCHead(nn.Layer):
    """One ``TwoFCHead`` per stage, sublayers named ``0``, ``1``, ...:
    forward(rois_feat [R, C, s, s], stage) -> [R, out_channel]."""

    def __init__(
        self,
        in_channel: int = 256,
        out_channel: int = 1024,
        resolution: int = 7,
        num_cascade_stage: int = 3,
    ):
        super().__init__()
        self.stages = [
            self.add_sublayer(str(k), TwoFCHead(in_channel, out_channel, resolution))
            for k in range(num_cascade_stage)
        ]
        self.out_channel = out_channel

    def forward(self, rois_feat: paddle.Tensor, stage: int = 0) -> paddle.Tensor:
        return self.stages[stage](rois_feat)


def refine_rois(
    deltas: paddle.Tensor,
    rois: paddle.Tensor,
    rois_num: paddle.Tensor,
    weights: Sequence[float],
    im_shape: paddle.Tensor,
    drop_empty: bool,
    plus_one: bool = False,
    clip: bool = True,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The next stage's RoIs: deltas [R, 4] (class-agnostic) applied to rois [R, 4] (stacked
    image by image, rois_num [B]) with ``weights``, detached, clipped to im_shape [B, 2]
    (h, w) unless not ``clip``. ``plus_one``: fluid's +1 widths, no dw/dh clip. ``drop_empty``
    (training) removes boxes with no width or height; an image left with none keeps its first
    box. Returns (rois [R', 4], rois_num [B] int32)."""
    sizes = None
    if clip:
        sizes = paddle.repeat_interleave(im_shape, rois_num.astype("int64"), axis=0)  # [R, 2]
    if plus_one:
        boxes = decode_deltas(
            deltas.detach(), rois.detach(), weights, sizes, clip_ratio=None, legacy_plus_one=True
        )
    else:
        boxes = decode_deltas(deltas.detach(), rois.detach(), weights, max_shape=sizes)  # [R, 4]
    rois_num = rois_num.astype("int32")
    if not drop_empty:
        return boxes, rois_num
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # [R]
    image = image_of_rows(rois_num)  # [R]
    kept = count_per_image(image, keep, rois_num)  # [B]
    rescue = (kept == 0) & (rois_num > 0)  # [B] images left with no box keep their first
    first = paddle.cumsum(rois_num) - rois_num  # [B] row of each image's first box
    row = paddle.arange(boxes.shape[0], dtype="int64")
    is_first = (row == paddle.gather(first.astype("int64"), image)) & paddle.gather(rescue, image)
    keep = keep | is_first
    rois_num = paddle.where(rescue, paddle.ones_like(kept), kept)
    return paddle.gather(boxes, paddle.nonzero(keep).flatten()), rois_num


@register("head")
class CascadeHead(nn.Layer):
    """Cascade R-CNN box head (module docstring).

    A RoI stage of ``TwoStageDetector`` with ``BBoxHead``'s interface:
    forward(feats, rois [R, 4], rois_num [B], im_shape [B, 2], gt=None) -> raw dict
    - eval (gt None): {"deltas": [R, 4] last stage, "scores": [R, C+1] mean softmax of the
      stages, "rois": the last stage's RoIs [R, 4], "rois_num"}: what ``RCNNBox`` decodes;
    - training (gt = (boxes list [M_b, 4], classes list [M_b])): {"stages": one dict per stage
      ({"logits", "deltas", "rois", "labels", "gt_boxes"}), "sample": stage 0's sampled RoIs
      ({"rois", "rois_num", "labels", "gt_boxes", "feat"}) for a mask branch}.
    ``get_loss(raw)`` -> {"loss_bbox_cls_stage{k}", "loss_bbox_reg_stage{k}"} for each stage.

    Args (2.x keys): head (CascadeTwoFCHead), roi_extractor (``RoIAlign`` arguments),
    bbox_assigner (``BBoxAssigner``, its ``cascade_iou`` gives the stage thresholds),
    num_classes, bbox_weight (one per stage), num_cascade_stages, stage_loss_weights;
    v0.1's test path: plus_one, refine_unclipped, scores_on_last_rois (module docstring);
    loss_bbox_beta: smooth-L1 beta of every stage's ``loss_bbox_reg`` (0: L1, 2.x; v0.1: 1.0);
    reg_class_agnostic (true only), add_gt_as_proposals ([true, false, false] only) and
    in_channel are accepted for config compatibility.
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        head: nn.Layer,
        roi_extractor: dict | None = None,
        bbox_assigner: Any = None,
        num_classes: int = 80,
        bbox_weight: Sequence[Sequence[float]] = DEFAULT_WEIGHTS,
        num_cascade_stages: int = 3,
        stage_loss_weights: Sequence[float] | None = None,
        reg_class_agnostic: bool = True,
        add_gt_as_proposals: Sequence[bool] = (True, False, False),
        plus_one: bool = False,
        refine_unclipped: bool = False,
        scores_on_last_rois: bool = False,
        in_channel: int | None = None,
        spatial_scales: Sequence[float] = (0.0625,),
        in_channels: Sequence[int] | None = None,
        loss_bbox_beta: float = 0.0,
    ):
        super().__init__()
        self.plus_one = bool(plus_one)
        self.loss_bbox_beta = check_beta(loss_bbox_beta, "CascadeHead.loss_bbox_beta")
        self.refine_unclipped = bool(refine_unclipped)
        self.scores_on_last_rois = bool(scores_on_last_rois)
        n = int(num_cascade_stages)
        if not reg_class_agnostic:
            raise ValueError("CascadeHead: only reg_class_agnostic true is implemented")
        if [bool(v) for v in add_gt_as_proposals] != [True] + [False] * (n - 1):
            raise ValueError("CascadeHead: add_gt_as_proposals must be [true, false, ...]")
        if len(bbox_weight) != n:
            raise ValueError(f"CascadeHead: bbox_weight needs {n} entries (one per stage)")
        self.head = head
        spec = dict(roi_extractor or {})
        spec.pop("name", None)
        spec.setdefault("spatial_scale", list(spatial_scales))
        self.roi_extractor = RoIAlign(**spec)
        self.conventions = dict(self.roi_extractor.conventions)  # fluid-era ones, if any
        if self.plus_one:
            self.conventions["box_coder_plus_one"] = True
        if self.refine_unclipped:
            self.conventions["cascade_refine_unclipped"] = True
        if self.scores_on_last_rois:
            self.conventions["cascade_scores_on_last_rois"] = True
        if self.loss_bbox_beta > 0:
            self.conventions["rcnn_loss_beta"] = self.loss_bbox_beta
        self.bbox_assigner = bbox_assigner or BBoxAssigner(num_classes=num_classes)
        self.conventions.update(getattr(self.bbox_assigner, "conventions", {}))
        if len(self.bbox_assigner.cascade_iou) < n:
            raise ValueError(f"CascadeHead: BBoxAssigner.cascade_iou needs {n} thresholds")
        self.num_classes = int(num_classes)
        self.num_stages = n
        self.bbox_weight = [[float(v) for v in w] for w in bbox_weight]
        self.stage_loss_weights = (
            [1.0 / n] * n if stage_loss_weights is None else [float(v) for v in stage_loss_weights]
        )
        feat = head.out_channel
        self.bbox_score = [
            self.add_sublayer(
                f"bbox_score_stage{k}",
                nn.Linear(
                    feat,
                    num_classes + 1,
                    weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
                    bias_attr=ParamAttr(initializer=Constant(0.0)),
                ),
            )
            for k in range(n)
        ]
        self.bbox_delta = [
            self.add_sublayer(
                f"bbox_delta_stage{k}",
                nn.Linear(
                    feat,
                    4,
                    weight_attr=ParamAttr(initializer=Normal(0.0, 0.001)),
                    bias_attr=ParamAttr(initializer=Constant(0.0)),
                ),
            )
            for k in range(n)
        ]

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> CascadeHead:
        """Build the per-stage heads with in_channel = the feature maps' channels."""
        args = dict(args)
        in_channels = list(args.pop("in_channels", None) or [args.get("in_channel") or 256])
        resolution = int((args.get("roi_extractor") or {}).get("resolution", 14))
        args["head"] = build(
            args.get("head", "CascadeTwoFCHead"),
            in_channel=in_channels[0],
            resolution=resolution,
            num_cascade_stage=int(args.get("num_cascade_stages", 3)),
        )
        if "bbox_assigner" in args:
            args["bbox_assigner"] = build(args["bbox_assigner"])
        return cls(**args)

    def _stage(
        self, pooled: paddle.Tensor, k: int
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """RoI features [R, C, s, s] -> (head features [R, F], scores [R, C+1] logits, deltas
        [R, 4]) of stage k."""
        x = self.head(pooled, k)  # [R, F]
        return x, self.bbox_score[k](x), self.bbox_delta[k](x)

    def forward(
        self,
        feats: Sequence[paddle.Tensor],
        rois: paddle.Tensor,
        rois_num: paddle.Tensor,
        im_shape: paddle.Tensor,
        gt: tuple[Sequence[paddle.Tensor], Sequence[paddle.Tensor]] | None = None,
    ) -> dict[str, Any]:
        stages: list[dict[str, paddle.Tensor]] = []
        probs = []
        sample: dict[str, paddle.Tensor] = {}
        deltas = None  # the previous stage's box deltas
        for k in range(self.num_stages):
            if k > 0:
                rois, rois_num = refine_rois(
                    deltas,
                    rois,
                    rois_num,
                    self.bbox_weight[k - 1],
                    im_shape,
                    gt is not None,
                    plus_one=self.plus_one,
                    clip=not self.refine_unclipped,
                )
            labels = gt_boxes = None
            if gt is not None:
                if k == 0:
                    rois, rois_num, labels, gt_boxes = self.bbox_assigner(
                        rois, rois_num, gt[0], gt[1]
                    )
                else:
                    iou = self.bbox_assigner.cascade_iou[k]
                    if self.bbox_assigner.fluid:  # v0.1: the gt boxes join every stage
                        rois, rois_num = self.bbox_assigner.with_gt_first(rois, rois_num, gt[0])
                    labels, gt_boxes = self._label_all(rois, rois_num, gt, iou)
            pooled = self.roi_extractor(feats, rois, rois_num)  # [R, C, s, s]
            feat, scores, deltas = self._stage(pooled, k)
            if gt is None:
                probs.append(F.softmax(scores, axis=-1))
                continue
            target = {"rois": rois, "rois_num": rois_num, "labels": labels, "gt_boxes": gt_boxes}
            stages.append({"logits": scores, "deltas": deltas, **target})
            if k == 0:  # the mask branch learns from the first stage's sample (as in 2.x)
                sample = {**target, "feat": feat}
        if gt is not None:
            return {"stages": stages, "sample": sample}
        if self.scores_on_last_rois:  # v0.1: every stage head on the last stage's RoIs
            last = probs[-1]
            probs = [F.softmax(self._stage(pooled, j)[1], axis=-1) for j in range(len(probs) - 1)]
            probs.append(last)
        return {
            "deltas": deltas,
            "scores": paddle.add_n(probs) / len(probs),
            "rois": rois,
            "rois_num": rois_num,
        }

    def get_loss(self, raw: dict[str, Any]) -> dict[str, paddle.Tensor]:
        """{"loss_bbox_cls_stage{k}", "loss_bbox_reg_stage{k}"} of the training raw output,
        each times ``stage_loss_weights[k]``."""
        losses = {}
        for k, stage in enumerate(raw["stages"]):
            loss_cls, loss_reg = rcnn_box_loss(
                stage["logits"],
                stage["deltas"],
                stage["rois"],
                stage["labels"],
                stage["gt_boxes"],
                self.num_classes,
                self.bbox_weight[k],
                self.plus_one,  # v0.1: targets coded with +1 widths, as the stages decode
                self.loss_bbox_beta,
            )
            losses[f"loss_bbox_cls_stage{k}"] = loss_cls * self.stage_loss_weights[k]
            losses[f"loss_bbox_reg_stage{k}"] = loss_reg * self.stage_loss_weights[k]
        return losses

    def _label_all(
        self,
        rois: paddle.Tensor,
        rois_num: paddle.Tensor,
        gt: tuple[Sequence[paddle.Tensor], Sequence[paddle.Tensor]],
        iou: float,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """Every RoI of every image labelled at one IoU threshold (no ignored band): (labels
        [R] int32, matched gt boxes [R, 4], zeros without gt)."""
        labels, boxes = [], []
        for r, g, c in zip(split_rois(rois, rois_num), gt[0], gt[1], strict=True):
            matched, lab = self.bbox_assigner.label(r, g, c, iou, iou)
            labels.append(lab)
            boxes.append(paddle.gather(g, matched) if g.shape[0] else paddle.zeros_like(r))
        return paddle.concat(labels), paddle.concat(boxes)
