"""The R-CNN box head: RoIAlign features -> TwoFCHead (FPN) or Res5Head (C4) -> class
scores (C + 1, background LAST) and class-specific deltas (4C).

Parameter names are PaddleDetection 2.x's: ``head.fc6`` / ``head.fc7`` (Linear weights
[in, out], XavierUniform), or ``head.res5.res5{a,b,c}`` (ResNet-50 variant-b res5, frozen
BN); ``bbox_score`` [feat, C+1] Normal(0, 0.01) and ``bbox_delta`` [feat, 4C] Normal(0, 0.001),
zero biases.

Training (``BBoxHead.forward`` with gt): ``BBoxAssigner`` samples the RoIs (gt boxes appended),
``loss_bbox_cls`` is the softmax cross-entropy averaged over the sampled RoIs,
``loss_bbox_reg`` the summed L1 between the deltas of each foreground RoI's own class and
``encode_deltas(roi, gt, bbox_weight)`` ([10, 10, 5, 5]), divided by the number of sampled RoIs.
PaddleDetection v0.1 (fluid) used smooth L1 with sigma 1 there: ``loss_bbox_beta: 1.0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal, XavierUniform

from ppdet.config.registry import register
from ppdet.modeling.assigners.sampler import BBoxAssigner
from ppdet.modeling.backbones.resnet import ResConvNorm, ResStage
from ppdet.modeling.coders.delta_bbox import encode_deltas
from ppdet.modeling.losses.smooth_l1 import check_beta, smooth_l1
from ppdet.ops.roi import distribute_fpn_proposals, roi_align

__all__ = ["BBoxHead", "RoIAlign", "Res5Head", "TwoFCHead", "rcnn_box_loss"]


class RoIAlign:
    """RoI features from one map (C4) or a pyramid (FPN: levels start_level..end_level, each
    RoI on the level ``distribute_fpn_proposals`` picks, refer level 4, scale 224).

    ``extract(feats, rois [R, 4], rois_num [B])`` -> [R, C, resolution, resolution].
    ``canconical_level`` keeps 2.x's spelling (config compatibility).

    Fluid-era (PaddleDetection v0.1) settings: ``aligned: false`` pools without the half-pixel
    shift, ``pixel_offset: true`` picks a RoI's level from its +1 size (w = x2 - x1 + 1).
    ``conventions`` names those a model runs (``ppdet.modeling.conventions``); the head that
    owns the extractor declares them.
    """

    def __init__(
        self,
        resolution: int = 14,
        spatial_scale: Sequence[float] = (0.0625,),
        sampling_ratio: int = 0,
        canconical_level: int = 4,
        canonical_size: int = 224,
        start_level: int = 0,
        end_level: int = 3,
        aligned: bool = False,
        pixel_offset: bool = False,
    ) -> None:
        self.resolution = int(resolution)
        self.spatial_scale = [float(s) for s in spatial_scale]
        self.sampling_ratio = int(sampling_ratio)
        self.canonical_level = int(canconical_level)
        self.canonical_size = int(canonical_size)
        self.start_level = int(start_level)
        self.end_level = int(end_level)
        self.aligned = bool(aligned)
        self.pixel_offset = bool(pixel_offset)

    @property
    def conventions(self) -> dict[str, bool]:
        """The fluid-era conventions this extractor runs: {} for 2.x's."""
        out = {}
        if not self.aligned:
            out["roi_align_aligned"] = False
        if self.pixel_offset and len(self.spatial_scale) > 1:
            out["distribute_fpn_pixel_offset"] = True
        return out

    def __call__(
        self, feats: Sequence[paddle.Tensor], rois: paddle.Tensor, rois_num: paddle.Tensor
    ) -> paddle.Tensor:
        kw = dict(sampling_ratio=self.sampling_ratio, aligned=self.aligned)
        if len(feats) == 1:
            return roi_align(feats[0], rois, rois_num, self.resolution, self.spatial_scale[0], **kw)
        first = round(-math.log2(self.spatial_scale[self.start_level]))  # P2 -> 2
        last = first + self.end_level - self.start_level
        per_level, restore, nums = distribute_fpn_proposals(
            rois,
            rois_num,
            first,
            last,
            self.canonical_level,
            self.canonical_size,
            pixel_offset=self.pixel_offset,
        )
        out = [
            roi_align(feats[lvl], r, n, self.resolution, self.spatial_scale[lvl], **kw)
            for lvl, r, n in zip(range(self.start_level, self.end_level + 1), per_level, nums)
        ]  # [R_l, C, s, s] each
        return paddle.gather(paddle.concat(out), restore.flatten())  # [R, C, s, s]


@register("head")
class TwoFCHead(nn.Layer):
    """Two fully connected layers: [R, C, s, s] -> flatten -> fc6 -> ReLU -> fc7 -> ReLU ->
    [R, out_channel]."""

    def __init__(self, in_channel: int = 256, out_channel: int = 1024, resolution: int = 7):
        super().__init__()
        fan = in_channel * resolution * resolution
        self.fc6 = nn.Linear(
            fan, out_channel, weight_attr=ParamAttr(initializer=XavierUniform(fan_out=fan))
        )
        self.fc7 = nn.Linear(
            out_channel,
            out_channel,
            weight_attr=ParamAttr(initializer=XavierUniform(fan_out=out_channel)),
        )
        self.out_channel = out_channel

    def forward(self, rois_feat: paddle.Tensor) -> paddle.Tensor:
        x = rois_feat.flatten(start_axis=1)  # [R, C*s*s]
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class _PooledShortcut(ResConvNorm):
    """A 1x1 conv + norm at stride 1 after a 2x2/2 average pool (ceil mode): the stride-2
    shortcut of a -vd res5 with variant b's parameter names (``conv``, ``norm``).
    x: [R, C, H, W] -> [R, out, ceil(H / 2), ceil(W / 2)]."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return super().forward(F.avg_pool2d(x, 2, 2, ceil_mode=True))


@register("head")
class Res5Head(nn.Layer):
    """C4 head: res5 of a ResNet-50 (variant b, 3 bottlenecks, stride 2) on the RoI features:
    [R, in_channel, 14, 14] -> [R, 2048, 7, 7]. ``depth`` is accepted for config
    compatibility; the head is depth-50 shaped for every backbone, as in 2.x.

    ``shortcut_avgpool``: the first block's shortcut pools (2x2/2) before its 1x1 conv, which
    then has stride 1, as PaddleDetection v0.1's C4 head of a -vd backbone (fluid-era
    convention ``res5_shortcut_avgpool``); parameter names stay variant b's."""

    def __init__(self, depth: int = 50, in_channel: int = 1024, shortcut_avgpool: bool = False):
        super().__init__()
        self.res5 = ResStage("res5", in_channel, 3, bottleneck=True, stride=2, variant="b")
        self.out_channel = self.res5.out_channels
        self.conventions: dict[str, bool] = {}
        if shortcut_avgpool:
            # ResStage's norm settings (frozen BN), stride 1 after the pool
            self.res5.blocks[0].short = _PooledShortcut(
                in_channel, self.out_channel, 1, norm_type="bn", norm_decay=0.0, freeze_norm=True
            )
            self.conventions["res5_shortcut_avgpool"] = True

    def forward(self, rois_feat: paddle.Tensor) -> paddle.Tensor:
        return self.res5(rois_feat)


@register("head")
class BBoxHead(nn.Layer):
    """R-CNN box head (module docstring).

    One of the RoI stages of ``TwoStageDetector`` (``CascadeHead`` is the other):
    forward(feats, rois [R, 4], rois_num [B], im_shape [B, 2], gt=None) -> raw dict
    - eval (gt None): {"deltas": [R, 4C], "scores": [R, C+1] softmax (background last),
      "rois", "rois_num"}: what ``RCNNBox`` decodes;
    - training (gt = (boxes list [M_b, 4], classes list [M_b])): the RoIs are first sampled
      (``bbox_assigner``) -> {"stages": [{"logits", "deltas", "rois", "labels", "gt_boxes"}],
      "sample": {"rois" [S, 4], "rois_num", "labels" [S], "gt_boxes" [S, 4], "feat": head
      features [S, F(, h, w)]}} (the sample feeds a mask branch).
    ``get_loss(raw)`` -> {"loss_bbox_cls", "loss_bbox_reg"}. ``im_shape`` is unused here (the
    cascade clips its refined boxes to it).

    Args (2.x keys): head (TwoFCHead / Res5Head), roi_extractor (``RoIAlign`` arguments),
    bbox_assigner (``BBoxAssigner``), with_pool (global average pool after the head: C4),
    num_classes, bbox_weight; in_channels / spatial_scales are filled from the feature maps.
    ``plus_one`` (v0.1): the regression targets are coded with fluid's +1 widths, the inverse
    of ``RCNNBox(plus_one=True)``'s decoding (declared as ``box_coder_plus_one``).
    ``loss_bbox_beta``: smooth-L1 beta of ``loss_bbox_reg`` (0: L1, 2.x; v0.1: 1.0, declared
    as ``rcnn_loss_beta``).
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        head: nn.Layer,
        roi_extractor: dict | None = None,
        bbox_assigner: Any = None,
        with_pool: bool = False,
        num_classes: int = 80,
        bbox_weight: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        in_channel: int | None = None,
        spatial_scales: Sequence[float] = (0.0625,),
        in_channels: Sequence[int] | None = None,
        plus_one: bool = False,
        loss_bbox_beta: float = 0.0,
    ):
        super().__init__()
        self.head = head
        spec = dict(roi_extractor or {})
        spec.pop("name", None)
        spec.setdefault("spatial_scale", list(spatial_scales))
        self.roi_extractor = RoIAlign(**spec)
        self.conventions = dict(self.roi_extractor.conventions)  # fluid-era ones, if any
        if bbox_assigner is None:
            bbox_assigner = BBoxAssigner(num_classes=num_classes)
        self.bbox_assigner = bbox_assigner
        self.conventions.update(getattr(bbox_assigner, "conventions", {}))
        self.plus_one = bool(plus_one)
        if self.plus_one:
            self.conventions["box_coder_plus_one"] = True
        self.loss_bbox_beta = check_beta(loss_bbox_beta, "BBoxHead.loss_bbox_beta")
        if self.loss_bbox_beta > 0:
            self.conventions["rcnn_loss_beta"] = self.loss_bbox_beta
        self.with_pool = with_pool
        self.num_classes = num_classes
        self.bbox_weight = [float(w) for w in bbox_weight]
        feat = head.out_channel
        self.bbox_score = nn.Linear(
            feat,
            num_classes + 1,
            weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
            bias_attr=ParamAttr(initializer=Constant(0.0)),
        )
        self.bbox_delta = nn.Linear(
            feat,
            4 * num_classes,
            weight_attr=ParamAttr(initializer=Normal(0.0, 0.001)),
            bias_attr=ParamAttr(initializer=Constant(0.0)),
        )

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> BBoxHead:
        """Build the head with in_channel = the feature maps' channels and the RoI size."""
        args = dict(args)
        in_channels = list(args.pop("in_channels", None) or [args.get("in_channel") or 256])
        resolution = int((args.get("roi_extractor") or {}).get("resolution", 14))
        args["head"] = build(
            args.get("head", "TwoFCHead"), in_channel=in_channels[0], resolution=resolution
        )
        if "bbox_assigner" in args:
            args["bbox_assigner"] = build(args["bbox_assigner"])
        return cls(**args)

    def features(
        self, feats: Sequence[paddle.Tensor], rois: paddle.Tensor, rois_num: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """rois [R, 4] -> (head features [R, F] (TwoFCHead) or [R, F, h, w] (Res5Head), the
        pooled vector [R, F] the predictors read)."""
        feat = self.head(self.roi_extractor(feats, rois, rois_num))
        x = feat
        if self.with_pool:
            x = F.adaptive_avg_pool2d(x, 1).flatten(start_axis=1)  # [R, F]
        return feat, x

    def forward(
        self,
        feats: Sequence[paddle.Tensor],
        rois: paddle.Tensor,
        rois_num: paddle.Tensor,
        im_shape: paddle.Tensor,
        gt: tuple[Sequence[paddle.Tensor], Sequence[paddle.Tensor]] | None = None,
    ) -> dict[str, Any]:
        if gt is not None:
            rois, rois_num, labels, gt_boxes = self.bbox_assigner(rois, rois_num, gt[0], gt[1])
        feat, x = self.features(feats, rois, rois_num)
        scores = self.bbox_score(x)  # [R, C+1]
        deltas = self.bbox_delta(x)  # [R, 4C]
        if gt is None:
            return {
                "deltas": deltas,
                "scores": F.softmax(scores, axis=-1),
                "rois": rois,
                "rois_num": rois_num,
            }
        sample = {"rois": rois, "rois_num": rois_num, "labels": labels, "gt_boxes": gt_boxes}
        stage = {"logits": scores, "deltas": deltas, **sample}
        return {"stages": [stage], "sample": {**sample, "feat": feat}}

    def get_loss(self, raw: dict[str, Any]) -> dict[str, paddle.Tensor]:
        """{"loss_bbox_cls", "loss_bbox_reg"} of the training raw output."""
        stage = raw["stages"][0]
        loss_cls, loss_reg = rcnn_box_loss(
            stage["logits"],
            stage["deltas"],
            stage["rois"],
            stage["labels"],
            stage["gt_boxes"],
            self.num_classes,
            self.bbox_weight,
            self.plus_one,
            self.loss_bbox_beta,
        )
        return {"loss_bbox_cls": loss_cls, "loss_bbox_reg": loss_reg}


def rcnn_box_loss(
    scores: paddle.Tensor,
    deltas: paddle.Tensor,
    rois: paddle.Tensor,
    labels: paddle.Tensor,
    gt_boxes: paddle.Tensor,
    num_classes: int,
    bbox_weight: Sequence[float],
    plus_one: bool = False,
    beta: float = 0.0,
) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The R-CNN box losses (module docstring): scores [R, C+1], deltas [R, 4C] class-specific
    or [R, 4] class-agnostic, rois / gt_boxes [R, 4], labels [R] (-1 ignored, ``num_classes``
    background) -> (softmax cross-entropy mean over the labelled RoIs, summed smooth L1 (beta
    0: L1) of the foreground deltas against ``encode_deltas(roi, gt, bbox_weight, plus_one)``
    / R)."""
    labels = labels.astype("int64")
    valid = paddle.nonzero(labels >= 0).flatten()
    if valid.shape[0]:
        loss_cls = F.cross_entropy(
            paddle.gather(scores, valid), paddle.gather(labels, valid), reduction="mean"
        )
    else:
        loss_cls = scores.sum() * 0.0
    fg = paddle.nonzero((labels >= 0) & (labels < num_classes)).flatten()
    if fg.shape[0] == 0:
        return loss_cls, deltas.sum() * 0.0
    pred = paddle.gather(deltas, fg)  # [F, 4C] or [F, 4]
    if deltas.shape[1] != 4:  # class-specific: the columns of each RoI's own class
        cols = (4 * paddle.gather(labels, fg)).unsqueeze(1) + paddle.arange(4, dtype="int64")
        pred = paddle.take_along_axis(pred, cols, axis=1)  # [F, 4]
    target = encode_deltas(
        paddle.gather(rois, fg), paddle.gather(gt_boxes, fg), bbox_weight, plus_one
    )  # [F, 4]
    return loss_cls, smooth_l1(pred - target.detach(), beta).sum() / labels.shape[0]
