"""RetinaNet head (Lin et al. 2017): shared conv towers on every pyramid level, a sigmoid
classifier and a box regressor per anchor; focal-loss training on max-IoU assigned anchors.

Parameter names are PaddleDetection 2.x's: ``conv_feat.fcos_head_{cls,reg}_tower_conv_{i}.conv``
(its RetinaFeat reuses FCOS's tower names), ``retina_cls`` [A * C] and ``retina_reg`` [4 A].

Training (``get_loss``), per image: anchors of all levels are assigned to the real gt boxes by
``MaxIoUAssigner``; a positive anchor's class target is the one-hot class of its gt box, a
negative's is all zeros, an ignored anchor does not count. ``loss_cls`` is the summed sigmoid
focal loss over positive and negative anchors, ``loss_reg`` the summed box loss over the
positives (``loss_bbox``: by default smooth-L1, beta 0: L1, between predicted and
``encode_deltas(anchor, gt, weights)`` deltas; or IoU / GIoU / DIoU / CIoU between the decoded
box and the gt box, see ``BoxLoss``); both are divided by the number of positives in the batch
(at least 1). ``loss`` is their sum.

Norms (``RetinaFeat.norm_type``): none by default (2.x's names); with a norm, each tower conv
keeps its weights shared by all levels and is followed by one norm shared by the levels
(``.norm``, 2.x's FCOSFeat layout) or, with ``norm_per_level``, one norm per level
(``.norms.{level}``).
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
from ppdet.modeling.coders.delta_bbox import decode_deltas, encode_deltas
from ppdet.modeling.layers.norms import EPS, MOMENTUM, NORM_TYPES, build_norm, fit_num_groups
from ppdet.modeling.losses.by_scale import losses_by_scale
from ppdet.modeling.losses.focal_loss import FocalLoss
from ppdet.modeling.losses.iou_loss import DIouLoss, GIoULoss, IoULoss, box_iou_loss
from ppdet.modeling.losses.smooth_l1 import smooth_l1
from ppdet.modeling.postprocess.bbox import MultiClassNMS
from ppdet.modeling.postprocess.retina import flatten_level

__all__ = ["BoxLoss", "RetinaFeat", "RetinaHead"]

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
    """One tower layer: ``conv`` (3x3, bias) -> norm -> ReLU, the conv shared by all levels.

    Sublayers (the checkpoint names): ``conv``; with a norm either ``norm`` (one norm for all
    levels, PaddleDetection 2.x's ``ConvNormLayer`` layout) or ``norms.{level}`` (one per
    level). An EvoNorm is its own activation: no ReLU follows it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_type: str | None = None,
        num_levels: int = 1,
        norm_per_level: bool = False,
        norm_groups: int = 32,
        norm_decay: float = 0.0,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        self.conv = _conv3x3(in_channels, out_channels)
        self.norm_per_level = norm_per_level
        self.relu = True
        if norm_type is None:
            return
        groups = fit_num_groups(out_channels, norm_groups)

        def make() -> nn.Layer:
            return build_norm(
                out_channels,
                norm_type,
                norm_decay,
                num_groups=groups,
                eps=norm_eps,
                momentum=norm_momentum,
            )

        if norm_per_level:
            self.norms = nn.LayerList([make() for _ in range(num_levels)])
            self.relu = not getattr(self.norms[0], "fuses_activation", False)
        else:
            self.norm = make()
            self.relu = not getattr(self.norm, "fuses_activation", False)

    def forward(self, x: paddle.Tensor, level: int = 0) -> paddle.Tensor:
        x = self.conv(x)
        if self.norm_per_level:
            if level >= len(self.norms):
                raise ValueError(
                    f"RetinaFeat: level {level} but the towers have per-level norms for "
                    f"{len(self.norms)} levels; set RetinaFeat.num_levels"
                )
            x = self.norms[level](x)
        elif hasattr(self, "norm"):
            x = self.norm(x)
        return F.relu(x) if self.relu else x


@register("head")
class RetinaFeat(nn.Layer):
    """The two conv towers of RetinaNet; the conv weights are shared by all levels.

    forward(x [B, feat_in, H, W], level=0) -> (cls_feat, reg_feat), each [B, feat_out, H, W]:
    num_convs 3x3 convs with bias, each followed by the norm (if any) and ReLU (none after an
    EvoNorm, which includes the activation). ``level`` (0 = the shallowest pyramid level) picks
    the norm when norms are per level.

    Args:
        feat_in, feat_out: channels in and out of every tower (the FPN's out_channel).
        num_convs: layers per tower.
        norm_type: None (PaddleDetection's RetinaNet: no norm; the parameter names are 2.x's)
            or a ``build_norm`` type: bn, sync_bn, gn, evonorm_s0, evonorm_b0, sn.
        norm_per_level: False (default): one norm per tower layer shared by all levels, as
            2.x's FCOSFeat (``fcos_head_*_tower_conv_{i}.norm``); True: the conv is shared but
            each level has its own norm (``.norms.{level}``), as EfficientDet's heads, which
            keeps batch statistics of differently sized levels apart.
        num_levels: pyramid levels (only read when norm_per_level).
        norm_groups: groups of gn / evonorm_s0, lowered to a divisor of feat_out.
        norm_decay: L2 decay of the norm parameters.
        norm_momentum, norm_eps: running-statistics momentum and epsilon of the norms (Paddle's
            0.9 / 1e-5 by default; ``build_norm``'s ``momentum`` / ``eps``).
        use_dcn: only false (deformable convs are not implemented).
    """

    def __init__(
        self,
        feat_in: int = 256,
        feat_out: int = 256,
        num_convs: int = 4,
        norm_type: str | None = None,
        use_dcn: bool = False,
        norm_per_level: bool = False,
        num_levels: int = 5,
        norm_groups: int = 32,
        norm_decay: float = 0.0,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        if use_dcn:
            raise ValueError(
                "RetinaFeat: use_dcn true is not implemented; remove it from the RetinaFeat config"
            )
        if norm_type is not None and norm_type not in NORM_TYPES:
            raise ValueError(
                f"RetinaFeat.norm_type: unknown {norm_type!r}; accepted: null, "
                f"{', '.join(NORM_TYPES)}"
            )
        if num_convs < 1:
            raise ValueError(f"RetinaFeat: num_convs must be >= 1, got {num_convs}")
        if norm_per_level and num_levels < 1:
            raise ValueError(f"RetinaFeat: num_levels must be >= 1, got {num_levels}")
        self.feat_in = feat_in
        self.feat_out = feat_out
        self.cls_tower: list[nn.Layer] = []
        self.reg_tower: list[nn.Layer] = []
        norm_kw = dict(
            norm_type=norm_type,
            num_levels=num_levels,
            norm_per_level=norm_per_level,
            norm_groups=norm_groups,
            norm_decay=norm_decay,
            norm_momentum=norm_momentum,
            norm_eps=norm_eps,
        )
        for i in range(num_convs):
            channels = feat_in if i == 0 else feat_out
            # interleaved like 2.x (cls_0, reg_0, cls_1, ...): the state_dict order
            self.cls_tower.append(
                self.add_sublayer(
                    f"fcos_head_cls_tower_conv_{i}", _TowerConv(channels, feat_out, **norm_kw)
                )
            )
            self.reg_tower.append(
                self.add_sublayer(
                    f"fcos_head_reg_tower_conv_{i}", _TowerConv(channels, feat_out, **norm_kw)
                )
            )

    def forward(self, x: paddle.Tensor, level: int = 0) -> tuple[paddle.Tensor, paddle.Tensor]:
        cls_feat, reg_feat = x, x
        for cls_conv, reg_conv in zip(self.cls_tower, self.reg_tower):
            cls_feat = cls_conv(cls_feat, level)
            reg_feat = reg_conv(reg_feat, level)
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


class BoxLoss:
    """The regression loss of a positive anchor, chosen by ``loss_bbox``.

    - ``{name: SmoothL1Loss, beta: 0.0, loss_weight: 1.0}`` (PaddleDetection 2.x's RetinaNet):
      smooth L1 (beta 0: L1) between predicted and target deltas, summed over the 4 deltas.
    - ``{name: IoULoss, mode: iou|giou|diou|ciou, loss_weight, eps}``, ``{name: GIoULoss,
      loss_weight, eps}`` or ``{name: DIouLoss, loss_weight, eps, use_complete_iou_loss}``:
      ``losses.iou_loss.box_iou_loss`` between the decoded predicted box and its gt box
      (pixels; the decode clips dw/dh like inference, so the loss and its gradient stay finite).

    ``loss_bbox: GIoULoss`` (a name, its arguments in a top-level ``GIoULoss:`` section;
    ``loss_bbox: SmoothL1Loss`` is smooth L1 with beta 0 and weight 1) works too; a config then replaces the base config's mapping instead of merging into it (a merged
    ``beta`` of the smooth-L1 base would be refused). The head sums the per-anchor losses over
    the positives and divides by their number (so a ``reduction`` key is refused, and the
    reduction of a built loss is not used).

    per_anchor(deltas [P, 4], anchors [P, 4], gt_boxes [P, 4], weights, plus_one) -> [P].
    """

    IOU_LOSSES = {"IoULoss": IoULoss, "GIoULoss": GIoULoss, "DIouLoss": DIouLoss}
    NAMES = ("SmoothL1Loss", *IOU_LOSSES)

    def __init__(self, spec: dict | IoULoss | None = None, key: str = "RetinaHead.loss_bbox"):
        if isinstance(spec, IoULoss):  # built from its own section (``loss_bbox: GIoULoss``)
            self.name, self.mode, self.beta = type(spec).__name__, spec.mode, 0.0
            self.loss_weight, self.eps = spec.loss_weight, spec.eps
            return
        if not isinstance(spec, (dict, type(None))):
            raise ValueError(f"{key}: expected a mapping {{name: ..., ...}} or a loss name")
        spec = dict(spec or {})
        name = spec.pop("name", "SmoothL1Loss")
        if name not in self.NAMES:
            raise ValueError(f"{key}.name: unknown {name!r}; accepted: {', '.join(self.NAMES)}")
        if "reduction" in spec:
            raise ValueError(
                f"{key}.reduction: the head sums over positive anchors and divides by their "
                "number; remove reduction"
            )
        self.name = name
        if name == "SmoothL1Loss":
            beta = spec.pop("beta", 0.0)
            weight = spec.pop("loss_weight", 1.0)
            if spec:
                raise ValueError(
                    f"{key}: unknown key(s) {sorted(spec)} for SmoothL1Loss; accepted: beta, "
                    "loss_weight"
                )
            self.mode, self.beta, self.loss_weight, self.eps = None, float(beta), float(weight), 0.0
            return
        try:
            built = self.IOU_LOSSES[name](**spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{key}: {e}") from None
        self.mode, self.beta = built.mode, 0.0
        self.loss_weight, self.eps = built.loss_weight, built.eps

    @property
    def on_boxes(self) -> bool:
        """True for the IoU family (decoded boxes), False for smooth L1 (deltas)."""
        return self.mode is not None

    def per_anchor(
        self,
        deltas: paddle.Tensor,
        anchors: paddle.Tensor,
        gt_boxes: paddle.Tensor,
        weights: Sequence[float],
        plus_one: bool = False,
    ) -> paddle.Tensor:
        if self.on_boxes:
            pred = decode_deltas(deltas, anchors, weights, legacy_plus_one=plus_one)  # [P, 4]
            return self.loss_weight * box_iou_loss(pred, gt_boxes, self.mode, self.eps)
        target = encode_deltas(anchors, gt_boxes, weights, plus_one)  # [P, 4]
        return self.loss_weight * smooth_l1(deltas - target, self.beta).sum(axis=-1)


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
        loss_bbox: ``{name: SmoothL1Loss, beta, loss_weight}`` (beta 0 = L1, the default) or an
            IoU-family loss on decoded boxes (``BoxLoss``), e.g. ``{name: GIoULoss}``.
        nms: ``MultiClassNMS`` (score_threshold 0.05, nms_top_k 1000, keep_top_k 100, IoU 0.5).
        prior_prob: initial foreground probability of every class logit (bias init).
        nms_pre: anchors kept per level before NMS (by best class score).
        weights: box coder weights (wx, wy, ww, wh).
        in_channels: channels of the neck outputs (all equal).
        box_coder_plus_one: regression targets with fluid's +1 widths (PaddleDetection v0.1,
            whose post-process ``RetinaNetDetectionOutput`` decodes so); declared as the
            ``box_coder_plus_one`` convention, so a model whose post-process decodes otherwise
            is refused (``ppdet.modeling.conventions``).
        num_pos_plus_one: divide both losses by the positives + 1 per image, summed over the
            batch (fluid's retinanet_target_assign ``fg_num``, PaddleDetection v0.1; declared
            as ``retina_num_pos_plus_one``); else by the positives (at least 1).
    """

    __shared__ = ["num_classes"]
    FEAT = "RetinaFeat"  # the registered towers a config builds when conv_feat is not given

    def __init__(
        self,
        num_classes: int = 80,
        conv_feat: nn.Layer | None = None,
        anchor_generator: dict | None = None,
        bbox_assigner: dict | None = None,
        loss_class: nn.Layer | None = None,
        loss_bbox: dict | IoULoss | None = None,
        nms: nn.Layer | None = None,
        prior_prob: float = 0.01,
        nms_pre: int = 1000,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        in_channels: Sequence[int] = (256,),
        box_coder_plus_one: bool = False,
        num_pos_plus_one: bool = False,
    ):
        super().__init__()
        if not 0 < prior_prob < 1:
            raise ValueError(f"RetinaHead: prior_prob must be in (0, 1), got {prior_prob}")
        self.num_classes = num_classes
        self.conv_feat = self.default_feat(in_channels[0]) if conv_feat is None else conv_feat
        self.anchor_generator = _build_plain(
            anchor_generator or {}, _ANCHOR_GENERATORS, "RetinaHead.anchor_generator"
        )
        self.bbox_assigner = _build_plain(
            bbox_assigner or {}, _ASSIGNERS, "RetinaHead.bbox_assigner"
        )
        self.loss_class = FocalLoss() if loss_class is None else loss_class
        self.box_loss = BoxLoss(loss_bbox, f"{type(self).__name__}.loss_bbox")
        self.nms = (
            MultiClassNMS(score_threshold=0.05, nms_top_k=1000, keep_top_k=100, nms_threshold=0.5)
            if nms is None
            else nms
        )
        self.nms_pre = int(nms_pre)
        self.weights = [float(w) for w in weights]
        self.box_coder_plus_one = bool(box_coder_plus_one)
        self.conventions = {"box_coder_plus_one": self.box_coder_plus_one}
        self.conventions.update(getattr(self.bbox_assigner, "conventions", {}))  # training
        self.num_pos_plus_one = bool(num_pos_plus_one)
        if self.num_pos_plus_one:
            self.conventions["retina_num_pos_plus_one"] = True
        bias = -math.log((1 - prior_prob) / prior_prob)
        self.build_predictors(self.conv_feat.feat_out, self.anchor_generator.num_anchors, bias)

    @staticmethod
    def default_feat(feat_in: int) -> nn.Layer:
        """The towers when none are given (a config builds ``FEAT``'s section)."""
        return RetinaFeat(feat_in=feat_in)

    def build_predictors(self, feat_out: int, num_anchors: int, cls_bias: float) -> None:
        """``retina_cls`` [A * C] and ``retina_reg`` [4 A]: 3x3 convs on the tower outputs."""
        self.retina_cls = _conv3x3(feat_out, num_anchors * self.num_classes, bias=cls_bias)
        self.retina_reg = _conv3x3(feat_out, num_anchors * 4)

    def predict_level(
        self, cls_feat: paddle.Tensor, reg_feat: paddle.Tensor, level: int
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        """One level's (cls logits [B, A*C, H, W], deltas [B, 4A, H, W]) from the towers."""
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat)

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> RetinaHead:
        """Build the towers with feat_in = the neck's channels, and the registered parts."""
        in_channels = list(args.get("in_channels", (256,)))
        args = dict(args)
        args["conv_feat"] = build(args.get("conv_feat", cls.FEAT), feat_in=in_channels[0])
        if args["conv_feat"].feat_in != in_channels[0]:
            raise ValueError(
                f"conv_feat.feat_in is {args['conv_feat'].feat_in} but the neck gives "
                f"{in_channels[0]} channels; drop feat_in (it defaults to the neck's) or match them"
            )
        for key in ("loss_class", "nms"):
            if key in args:
                args[key] = build(args[key])
        if args.get("loss_bbox") == "SmoothL1Loss":  # not a registered class: its defaults
            args["loss_bbox"] = {"name": "SmoothL1Loss"}
        elif isinstance(args.get("loss_bbox"), str):  # a registered loss's section
            args["loss_bbox"] = build(args["loss_bbox"])
        return cls(**args)

    def forward(
        self, feats: Sequence[paddle.Tensor]
    ) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
        if len(feats) != self.anchor_generator.num_levels:
            raise ValueError(
                f"{type(self).__name__}: got {len(feats)} feature maps, the anchor generator "
                f"has {self.anchor_generator.num_levels} levels "
                f"(strides {self.anchor_generator.strides})"
            )
        cls_logits, bbox_deltas = [], []
        for level, x in enumerate(feats):
            cls_feat, reg_feat = self.conv_feat(x, level)
            logits, deltas = self.predict_level(cls_feat, reg_feat, level)
            cls_logits.append(logits)  # [B, A*C, H, W]
            bbox_deltas.append(deltas)  # [B, 4A, H, W]
        return cls_logits, bbox_deltas

    def anchors(self, cls_logits: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        """Anchors of each level, [H_i * W_i * A, 4] input pixels."""
        return self.anchor_generator(cls_logits)

    def get_loss(
        self, raw: dict[str, list[paddle.Tensor]], batch: dict[str, paddle.Tensor]
    ) -> dict[str, Any]:
        """{"loss", "loss_cls", "loss_reg", "reg_loss_by_scale"} for the raw outputs
        (``cls_logits``, ``bbox_deltas``, ``anchors`` per level) against the batch's
        ``gt_bbox`` [B, M, 4], ``gt_class`` [B, M, 1] and ``pad_gt_mask`` [B, M, 1] (rows with
        mask 0 are padding). ``reg_loss_by_scale`` ({"small", "medium", "large"}, detached) is
        the regression loss split by the area of the positives' gt boxes, the Stitcher's
        feedback (``ppdet.modeling.losses.by_scale.losses_by_scale``)."""
        cls_logits, bbox_deltas = raw["cls_logits"], raw["bbox_deltas"]
        anchors = paddle.concat(list(raw["anchors"]), axis=0)  # [N, 4]
        logits = paddle.concat(
            [flatten_level(x, self.num_classes) for x in cls_logits], axis=1
        )  # [B, N, C]
        deltas = paddle.concat([flatten_level(x, 4) for x in bbox_deltas], axis=1)  # [B, N, 4]
        batch_size, num_anchors = logits.shape[0], anchors.shape[0]
        cls_target, gt_boxes, labels = self._targets(anchors, batch, batch_size)
        num_pos = (labels == 1).astype("float32").sum()
        if self.num_pos_plus_one:  # fluid's fg_num: each image's positives + 1
            num_pos = num_pos + float(batch_size)
        num_pos = paddle.clip(num_pos, min=1.0)
        valid = (labels >= 0).astype(logits.dtype).unsqueeze(-1)  # [B, N, 1]
        loss_cls = self.loss_class(logits, cls_target, num_pos, weight=valid)
        pos = paddle.nonzero((labels == 1).flatten()).flatten()  # [P] into B * N
        if pos.shape[0] == 0:
            per_anchor = deltas.sum(axis=-1).flatten()[:0]  # [0], keeps the graph
            loss_reg = deltas.sum() * 0.0
            areas = per_anchor.detach()
        else:
            pos_gt = paddle.gather(gt_boxes.reshape([-1, 4]), pos)  # [P, 4]
            pos_anchors = paddle.gather(
                anchors.unsqueeze(0).expand([batch_size, num_anchors, 4]).reshape([-1, 4]), pos
            )  # [P, 4]
            pos_deltas = paddle.gather(deltas.reshape([-1, 4]), pos)  # [P, 4]
            per_anchor = self.box_loss.per_anchor(
                pos_deltas, pos_anchors, pos_gt, self.weights, self.box_coder_plus_one
            )
            loss_reg = per_anchor.sum() / num_pos
            areas = (pos_gt[:, 2] - pos_gt[:, 0]) * (pos_gt[:, 3] - pos_gt[:, 1])  # [P]
        return {
            "loss": loss_cls + loss_reg,
            "loss_cls": loss_cls,
            "loss_reg": loss_reg,
            "reg_loss_by_scale": losses_by_scale(per_anchor, areas),
        }

    @paddle.no_grad()
    def _targets(
        self, anchors: paddle.Tensor, batch: dict[str, paddle.Tensor], batch_size: int
    ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        """(cls_target [B, N, C] one-hot float, gt_boxes [B, N, 4] the matched gt box of each
        anchor (the anchor itself where not positive), labels [B, N] int32: 1 positive,
        0 negative, -1 ignored)."""
        gt_bbox = batch["gt_bbox"]  # [B, M, 4]
        gt_class = batch["gt_class"]  # [B, M, 1]
        if "pad_gt_mask" in batch:
            mask = batch["pad_gt_mask"][..., 0] > 0  # [B, M]
        else:
            mask = paddle.ones(gt_bbox.shape[:2], "bool")
        cls_targets, box_targets, all_labels = [], [], []
        for b in range(batch_size):
            keep = paddle.nonzero(mask[b]).flatten()  # [m]
            boxes = paddle.gather(gt_bbox[b], keep) if keep.shape[0] else gt_bbox[b][:0]
            classes = paddle.gather(gt_class[b, :, 0], keep) if keep.shape[0] else None
            matched, labels = self.bbox_assigner(anchors, boxes)  # [N], [N]
            pos = labels == 1
            if boxes.shape[0] == 0:
                cls_t = paddle.zeros([anchors.shape[0], self.num_classes], "float32")
                gt_of = anchors
            else:
                cls_of = paddle.gather(classes, matched).astype("int64")  # [N]
                cls_t = F.one_hot(cls_of, self.num_classes) * pos.astype("float32").unsqueeze(-1)
                gt_of = paddle.gather(boxes, matched)  # [N, 4]
                gt_of = paddle.where(pos.unsqueeze(-1), gt_of, anchors)  # non-positives: 0 deltas
            cls_targets.append(cls_t)
            box_targets.append(gt_of)
            all_labels.append(labels)
        return paddle.stack(cls_targets), paddle.stack(box_targets), paddle.stack(all_labels)
