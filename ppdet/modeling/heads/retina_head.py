"""RetinaNet head (Lin et al. 2017): shared conv towers on every pyramid level, a sigmoid
classifier and a box regressor per anchor; focal-loss training on max-IoU assigned anchors.

Parameter names are PaddleDetection 2.x's: ``conv_feat.fcos_head_{cls,reg}_tower_conv_{i}.conv``
(its RetinaFeat reuses FCOS's tower names), ``retina_cls`` [A * C] and ``retina_reg`` [4 A].

Training (``get_loss``), per image: anchors of all levels are assigned to the real gt boxes by
``MaxIoUAssigner``; a positive anchor's class target is the one-hot class of its gt box, a
negative's is all zeros, an ignored anchor does not count. ``loss_cls`` is the summed sigmoid
focal loss over positive and negative anchors, ``loss_reg`` the summed smooth-L1 (beta 0: L1)
between predicted and ``encode_deltas(anchor, gt, weights)`` deltas over the positives; both
are divided by the number of positives in the batch (at least 1). ``loss`` is their sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal

from ppdet.config.registry import register
from ppdet.modeling.anchors import AnchorGenerator, RetinaAnchorGenerator
from ppdet.modeling.assigners import MaxIoUAssigner
from ppdet.modeling.coders.delta_bbox import encode_deltas
from ppdet.modeling.losses.focal_loss import FocalLoss
from ppdet.modeling.postprocess.bbox import MultiClassNMS
from ppdet.modeling.postprocess.retina import flatten_level

__all__ = ["RetinaFeat", "RetinaHead"]

_ANCHOR_GENERATORS = {
    "RetinaAnchorGenerator": RetinaAnchorGenerator,
    "AnchorGenerator": AnchorGenerator,
}
_ASSIGNERS = {"MaxIoUAssigner": MaxIoUAssigner}


def _conv3x3(in_channels: int, out_channels: int, bias: float = 0.0) -> nn.Conv2D:
    """3x3 'same' conv with a Normal(0, 0.01) weight and a constant bias."""
    return nn.Conv2D(
        in_channels,
        out_channels,
        3,
        padding=1,
        weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
        bias_attr=ParamAttr(initializer=Constant(bias)),
    )


class _TowerConv(nn.Layer):
    """One tower layer: ``conv`` then ReLU (the ``.conv`` level keeps 2.x's names)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = _conv3x3(in_channels, out_channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.relu(self.conv(x))


@register("head")
class RetinaFeat(nn.Layer):
    """The two conv towers of RetinaNet, shared by all levels.

    forward(x [B, feat_in, H, W]) -> (cls_feat, reg_feat), each [B, feat_out, H, W]: num_convs
    3x3 convs with bias, each followed by ReLU, no normalisation.

    Args:
        feat_in, feat_out: channels in and out of every tower (the FPN's out_channel).
        num_convs: layers per tower.
        norm_type, use_dcn: only null / false (PaddleDetection's RetinaNet configs); other
            values are refused.
    """

    def __init__(
        self,
        feat_in: int = 256,
        feat_out: int = 256,
        num_convs: int = 4,
        norm_type: str | None = None,
        use_dcn: bool = False,
    ):
        super().__init__()
        if norm_type is not None or use_dcn:
            raise ValueError(
                "RetinaFeat: only norm_type null and use_dcn false are implemented; "
                "remove them from the RetinaFeat config"
            )
        if num_convs < 1:
            raise ValueError(f"RetinaFeat: num_convs must be >= 1, got {num_convs}")
        self.feat_in = feat_in
        self.feat_out = feat_out
        self.cls_tower: list[nn.Layer] = []
        self.reg_tower: list[nn.Layer] = []
        for i in range(num_convs):
            channels = feat_in if i == 0 else feat_out
            # interleaved like 2.x (cls_0, reg_0, cls_1, ...): the state_dict order
            self.cls_tower.append(
                self.add_sublayer(f"fcos_head_cls_tower_conv_{i}", _TowerConv(channels, feat_out))
            )
            self.reg_tower.append(
                self.add_sublayer(f"fcos_head_reg_tower_conv_{i}", _TowerConv(channels, feat_out))
            )

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        cls_feat, reg_feat = x, x
        for cls_conv, reg_conv in zip(self.cls_tower, self.reg_tower):
            cls_feat = cls_conv(cls_feat)
            reg_feat = reg_conv(reg_feat)
        return cls_feat, reg_feat


def _build_plain(spec: Any, table: dict[str, type], key: str) -> Any:
    """An unregistered helper object from ``{name: X, ...}`` (or an already built one)."""
    if not isinstance(spec, dict):
        if any(isinstance(spec, cls) for cls in table.values()):
            return spec
        raise ValueError(f"{key}: expected a mapping like {{name: {next(iter(table))}, ...}}")
    kwargs = dict(spec)
    name = kwargs.pop("name", next(iter(table)))
    if name not in table:
        raise ValueError(f"{key}.name: unknown {name!r}; accepted: {', '.join(table)}")
    try:
        return table[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"{key}: {e}") from None


def _smooth_l1(diff: paddle.Tensor, beta: float) -> paddle.Tensor:
    """Elementwise smooth L1 of ``diff``; beta 0 is plain L1."""
    absdiff = diff.abs()
    if beta <= 0:
        return absdiff
    return paddle.where(absdiff < beta, 0.5 * absdiff * absdiff / beta, absdiff - 0.5 * beta)


@register("head")
class RetinaHead(nn.Layer):
    """RetinaNet head (module docstring: naming, training).

    forward(feats) with feats[i]: [B, feat_in, H_i, W_i] (P3-P7, shallowest first) ->
    (cls_logits, bbox_deltas), lists over the levels of [B, A * C, H_i, W_i] (channel a * C + c,
    sigmoid, no background) and [B, 4 A, H_i, W_i] (channel 4 a + k: dx, dy, dw, dh);
    ``anchors(cls_logits)`` gives the anchors of each level. ``nms``, ``nms_pre`` and
    ``weights`` are read by RetinaNet's post-process (``RetinaBox`` + NMS).

    Args (the config keys of PaddleDetection's RetinaHead):
        num_classes: foreground classes.
        conv_feat: the towers (``RetinaFeat``); feat_in defaults to the neck's channels.
        anchor_generator: ``{name: RetinaAnchorGenerator | AnchorGenerator, ...}``.
        bbox_assigner: ``{name: MaxIoUAssigner, positive_overlap, negative_overlap,
            allow_low_quality}``.
        loss_class: ``FocalLoss``.
        loss_bbox: ``{name: SmoothL1Loss, beta, loss_weight}`` (beta 0 = L1).
        nms: ``MultiClassNMS`` (score_threshold 0.05, nms_top_k 1000, keep_top_k 100, IoU 0.5).
        prior_prob: initial foreground probability of every class logit (bias init).
        nms_pre: anchors kept per level before NMS (by best class score).
        weights: box coder weights (wx, wy, ww, wh).
        in_channels: channels of the neck outputs (all equal).
        box_coder_plus_one: regression targets with fluid's +1 widths (PaddleDetection v0.1,
            whose post-process ``RetinaNetDetectionOutput`` decodes so); declared as the
            ``box_coder_plus_one`` convention, so a model whose post-process decodes otherwise
            is refused (``ppdet.modeling.conventions``).
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        num_classes: int = 80,
        conv_feat: nn.Layer | None = None,
        anchor_generator: dict | None = None,
        bbox_assigner: dict | None = None,
        loss_class: nn.Layer | None = None,
        loss_bbox: dict | None = None,
        nms: nn.Layer | None = None,
        prior_prob: float = 0.01,
        nms_pre: int = 1000,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        in_channels: Sequence[int] = (256,),
        box_coder_plus_one: bool = False,
    ):
        super().__init__()
        if not 0 < prior_prob < 1:
            raise ValueError(f"RetinaHead: prior_prob must be in (0, 1), got {prior_prob}")
        self.num_classes = num_classes
        self.conv_feat = RetinaFeat(feat_in=in_channels[0]) if conv_feat is None else conv_feat
        self.anchor_generator = _build_plain(
            anchor_generator or {}, _ANCHOR_GENERATORS, "RetinaHead.anchor_generator"
        )
        self.bbox_assigner = _build_plain(
            bbox_assigner or {}, _ASSIGNERS, "RetinaHead.bbox_assigner"
        )
        self.loss_class = FocalLoss() if loss_class is None else loss_class
        self.reg_beta, self.reg_weight = self._parse_loss_bbox(loss_bbox or {})
        self.nms = (
            MultiClassNMS(score_threshold=0.05, nms_top_k=1000, keep_top_k=100, nms_threshold=0.5)
            if nms is None
            else nms
        )
        self.nms_pre = int(nms_pre)
        self.weights = [float(w) for w in weights]
        self.box_coder_plus_one = bool(box_coder_plus_one)
        self.conventions = {"box_coder_plus_one": self.box_coder_plus_one}
        num_anchors = self.anchor_generator.num_anchors
        feat_out = self.conv_feat.feat_out
        bias = -math.log((1 - prior_prob) / prior_prob)
        self.retina_cls = _conv3x3(feat_out, num_anchors * num_classes, bias=bias)
        self.retina_reg = _conv3x3(feat_out, num_anchors * 4)

    @staticmethod
    def _parse_loss_bbox(spec: dict) -> tuple[float, float]:
        spec = dict(spec)
        name = spec.pop("name", "SmoothL1Loss")
        beta = spec.pop("beta", 0.0)
        weight = spec.pop("loss_weight", 1.0)
        if name != "SmoothL1Loss" or spec:
            raise ValueError(
                "RetinaHead.loss_bbox: only {name: SmoothL1Loss, beta, loss_weight} is supported, "
                f"got name {name!r} and extra keys {sorted(spec)}"
            )
        return float(beta), float(weight)

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> RetinaHead:
        """Build the towers with feat_in = the neck's channels, and the registered parts."""
        in_channels = list(args.get("in_channels", (256,)))
        args = dict(args)
        args["conv_feat"] = build(args.get("conv_feat", "RetinaFeat"), feat_in=in_channels[0])
        if args["conv_feat"].feat_in != in_channels[0]:
            raise ValueError(
                f"conv_feat.feat_in is {args['conv_feat'].feat_in} but the neck gives "
                f"{in_channels[0]} channels; drop feat_in (it defaults to the neck's) or match them"
            )
        for key in ("loss_class", "nms"):
            if key in args:
                args[key] = build(args[key])
        return cls(**args)

    def forward(
        self, feats: Sequence[paddle.Tensor]
    ) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
        if len(feats) != self.anchor_generator.num_levels:
            raise ValueError(
                f"RetinaHead: got {len(feats)} feature maps, the anchor generator has "
                f"{self.anchor_generator.num_levels} levels "
                f"(strides {self.anchor_generator.strides})"
            )
        cls_logits, bbox_deltas = [], []
        for x in feats:
            cls_feat, reg_feat = self.conv_feat(x)
            cls_logits.append(self.retina_cls(cls_feat))  # [B, A*C, H, W]
            bbox_deltas.append(self.retina_reg(reg_feat))  # [B, 4A, H, W]
        return cls_logits, bbox_deltas

    def anchors(self, cls_logits: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        """Anchors of each level, [H_i * W_i * A, 4] input pixels."""
        return self.anchor_generator(cls_logits)

    def get_loss(
        self, raw: dict[str, list[paddle.Tensor]], batch: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        """{"loss", "loss_cls", "loss_reg"} for the raw outputs (``cls_logits``,
        ``bbox_deltas``, ``anchors`` per level) against the batch's ``gt_bbox`` [B, M, 4],
        ``gt_class`` [B, M, 1] and ``pad_gt_mask`` [B, M, 1] (rows with mask 0 are padding)."""
        cls_logits, bbox_deltas = raw["cls_logits"], raw["bbox_deltas"]
        anchors = paddle.concat(list(raw["anchors"]), axis=0)  # [N, 4]
        logits = paddle.concat(
            [flatten_level(x, self.num_classes) for x in cls_logits], axis=1
        )  # [B, N, C]
        deltas = paddle.concat([flatten_level(x, 4) for x in bbox_deltas], axis=1)  # [B, N, 4]
        cls_target, reg_target, labels = self._targets(anchors, batch, logits.shape[0])
        num_pos = paddle.clip((labels == 1).astype("float32").sum(), min=1.0)
        valid = (labels >= 0).astype(logits.dtype).unsqueeze(-1)  # [B, N, 1]
        positive = (labels == 1).unsqueeze(-1)  # [B, N, 1]
        loss_cls = self.loss_class(logits, cls_target, num_pos, weight=valid)
        diff = paddle.where(positive, deltas - reg_target, paddle.zeros_like(deltas))
        loss_reg = self.reg_weight * _smooth_l1(diff, self.reg_beta).sum() / num_pos
        return {"loss": loss_cls + loss_reg, "loss_cls": loss_cls, "loss_reg": loss_reg}

    @paddle.no_grad()
    def _targets(
        self, anchors: paddle.Tensor, batch: dict[str, paddle.Tensor], batch_size: int
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """(cls_target [B, N, C] one-hot float, reg_target [B, N, 4] deltas (0 where not
        positive), labels [B, N] int32: 1 positive, 0 negative, -1 ignored)."""
        gt_bbox = batch["gt_bbox"]  # [B, M, 4]
        gt_class = batch["gt_class"]  # [B, M, 1]
        if "pad_gt_mask" in batch:
            mask = batch["pad_gt_mask"][..., 0] > 0  # [B, M]
        else:
            mask = paddle.ones(gt_bbox.shape[:2], "bool")
        cls_targets, reg_targets, all_labels = [], [], []
        for b in range(batch_size):
            keep = paddle.nonzero(mask[b]).flatten()  # [m]
            boxes = paddle.gather(gt_bbox[b], keep) if keep.shape[0] else gt_bbox[b][:0]
            classes = paddle.gather(gt_class[b, :, 0], keep) if keep.shape[0] else None
            matched, labels = self.bbox_assigner(anchors, boxes)  # [N], [N]
            pos = labels == 1
            if boxes.shape[0] == 0:
                cls_t = paddle.zeros([anchors.shape[0], self.num_classes], "float32")
                reg_t = paddle.zeros_like(anchors)
            else:
                cls_of = paddle.gather(classes, matched).astype("int64")  # [N]
                cls_t = F.one_hot(cls_of, self.num_classes) * pos.astype("float32").unsqueeze(-1)
                gt_of = paddle.gather(boxes, matched)  # [N, 4]
                gt_of = paddle.where(pos.unsqueeze(-1), gt_of, anchors)  # non-positives: 0 deltas
                reg_t = encode_deltas(anchors, gt_of, self.weights, self.box_coder_plus_one)
            cls_targets.append(cls_t)
            reg_targets.append(reg_t)
            all_labels.append(labels)
        return paddle.stack(cls_targets), paddle.stack(reg_targets), paddle.stack(all_labels)
