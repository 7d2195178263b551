"""Region Proposal Network head (Ren et al. 2015): objectness and box deltas per anchor,
shared by all pyramid levels; proposals for the second stage; its own training loss.

Parameter names are PaddleDetection 2.x's: ``rpn_feat.rpn_conv`` (3x3, the input's channels,
ReLU), ``rpn_rois_score`` [A] and ``rpn_rois_delta`` [4A] (1x1 convs), all Normal(0, 0.01)
weights and zero biases.

Loss (``get_loss``), over the batch: anchors get ``RPNTargetAssign`` labels;
``loss_rpn_cls`` is the summed binary cross-entropy on the logits of the sampled anchors,
``loss_rpn_reg`` the summed L1 between predicted and target deltas of the positive anchors;
both are divided by ``batch_size_per_im * B`` (256 per image). PaddleDetection v0.1 (fluid)
instead used smooth L1 with sigma 3 (``loss_bbox_beta: 0.1111``, beta = 1 / sigma^2) and
divided both by the number of anchors actually sampled (``loss_norm: sampled``; fewer than
256 per image when an image lacks negatives).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, Normal

from ppdet.config.registry import register
from ppdet.modeling.anchors import AnchorGenerator
from ppdet.modeling.assigners.rpn_target import RPNTargetAssign
from ppdet.modeling.heads.proposal_generator import ProposalGenerator
from ppdet.modeling.heads.rpn_anchors import FluidAnchorGenerator
from ppdet.modeling.losses.smooth_l1 import check_beta, smooth_l1
from ppdet.modeling.postprocess.retina import flatten_level

__all__ = ["RPNFeat", "RPNHead"]


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2D:
    return nn.Conv2D(
        c_in,
        c_out,
        k,
        padding=(k - 1) // 2,
        weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
        bias_attr=ParamAttr(initializer=Constant(0.0)),
    )


class RPNFeat(nn.Layer):
    """``rpn_conv`` 3x3 + ReLU on every level: [B, C, H, W] -> [B, out_channel, H, W]."""

    def __init__(self, in_channel: int = 1024, out_channel: int = 1024):
        super().__init__()
        self.rpn_conv = _conv(in_channel, out_channel, 3)

    def forward(self, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
        return [F.relu(self.rpn_conv(x)) for x in feats]


def _plain(cls: type, spec: Any, key: str, kinds: dict[str, type] | None = None) -> Any:
    """Build ``cls`` from a mapping of its arguments; ``kinds`` lets ``name:`` pick another
    class (e.g. ``FluidAnchorGenerator``)."""
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"{key}: expected a mapping of {cls.__name__} arguments")
    name = spec.get("name")
    if kinds is not None and name is not None:
        if name not in kinds:
            raise ValueError(f"{key}: name {name!r} is not one of {', '.join(kinds)}")
        cls = kinds[name]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"{key}: {e}") from None


def reorder_anchors(
    scores: Sequence[paddle.Tensor],
    deltas: Sequence[paddle.Tensor],
    anchors: Sequence[paddle.Tensor],
    order: Sequence[int],
) -> tuple[list[paddle.Tensor], list[paddle.Tensor], list[paddle.Tensor]]:
    """Every level's anchors (and their scores [B, A, H, W], deltas [B, 4A, H, W], anchors
    [H*W*A, 4]) put in ``order`` (a permutation of the A anchors of a location)."""
    index = paddle.to_tensor(list(order), dtype="int64")
    n = len(order)
    out_s, out_d, out_a = [], [], []
    for s, d, a in zip(scores, deltas, anchors):
        out_s.append(paddle.gather(s, index, axis=1))
        shape = paddle.shape(d)  # [B, 4A, H, W]
        grouped = d.reshape([shape[0], n, 4, shape[2], shape[3]])
        out_d.append(paddle.gather(grouped, index, axis=1).reshape(shape))
        out_a.append(paddle.gather(a.reshape([-1, n, 4]), index, axis=1).reshape([-1, 4]))
    return out_s, out_d, out_a


@register("head")
class RPNHead(nn.Layer):
    """RPN (module docstring: naming, loss).

    forward(feats, im_shape) with feats[i]: [B, C, H_i, W_i] (shallowest first; FPN P2-P6 or
    the C4 map) and im_shape [B, 2] -> raw {"scores": [B, A, H_i, W_i] objectness logits,
    "deltas": [B, 4A, H_i, W_i], "anchors": [H_i*W_i*A, 4] (per level), "rois": [R, 4]
    proposals in input pixels (image by image), "rois_num": [B] int32, "im_shape": the input
    im_shape (the image border of ``rpn_target_assign.straddle_thresh``)}; ``im_info`` [B, 2]
    (h, w: v0.1's ``im_info``, ``two_stage.fluid_im_info``) is the clip window of a proposal
    generator with ``pixel_offset``;
    ``get_loss(raw, gt_boxes)`` -> {"loss_rpn_cls", "loss_rpn_reg"}.

    Args (2.x config keys): anchor_generator (``AnchorGenerator`` arguments; ``name:
    FluidAnchorGenerator`` for v0.1's anchors),
    rpn_target_assign (``RPNTargetAssign``), train_proposal / test_proposal
    (``ProposalGenerator``), in_channel (channels of the input maps; filled from the
    backbone/neck), in_channels (the same as a list, filled by the architecture);
    loss_bbox_beta (smooth-L1 beta of ``loss_rpn_reg``; 0: L1, 2.x), loss_norm ("batch":
    ``batch_size_per_im * B``, 2.x; "sampled": the number of sampled anchors, v0.1).
    """

    LOSS_NORMS = ("batch", "sampled")

    def __init__(
        self,
        anchor_generator: dict | None = None,
        rpn_target_assign: dict | None = None,
        train_proposal: dict | None = None,
        test_proposal: dict | None = None,
        in_channel: int | None = None,
        in_channels: Sequence[int] = (1024,),
        loss_bbox_beta: float = 0.0,
        loss_norm: str = "batch",
    ):
        super().__init__()
        channels = int(in_channel if in_channel is not None else in_channels[0])
        if loss_norm not in self.LOSS_NORMS:
            raise ValueError(
                f"RPNHead.loss_norm: {loss_norm!r} is not one of {', '.join(self.LOSS_NORMS)}"
            )
        self.loss_bbox_beta = check_beta(loss_bbox_beta, "RPNHead.loss_bbox_beta")
        self.loss_norm = loss_norm
        self.anchor_generator = _plain(
            AnchorGenerator,
            anchor_generator or {},
            "RPNHead.anchor_generator",
            kinds={
                "AnchorGenerator": AnchorGenerator,
                "FluidAnchorGenerator": FluidAnchorGenerator,
            },
        )
        self.rpn_target_assign = _plain(
            RPNTargetAssign, rpn_target_assign or {}, "RPNHead.rpn_target_assign"
        )
        self.train_proposal = _plain(
            ProposalGenerator,
            train_proposal or dict(pre_nms_top_n=12000, post_nms_top_n=2000),
            "RPNHead.train_proposal",
        )
        self.test_proposal = _plain(ProposalGenerator, test_proposal or {}, "RPNHead.test_proposal")
        if self.train_proposal.pixel_offset != self.test_proposal.pixel_offset:
            raise ValueError("RPNHead: train_proposal and test_proposal must agree on pixel_offset")
        # fluid-era conventions this head runs (ppdet.modeling.conventions), if any
        self.conventions = dict(getattr(self.anchor_generator, "conventions", {}))
        if self.test_proposal.pixel_offset:
            self.conventions["pixel_offset"] = True
        self.conventions.update(self.rpn_target_assign.conventions)  # training-side ones
        if self.loss_bbox_beta > 0:
            self.conventions["rpn_loss_beta"] = self.loss_bbox_beta
        if loss_norm == "sampled":
            self.conventions["rpn_loss_norm"] = "sampled"
        num_anchors = self.anchor_generator.num_anchors
        self.rpn_feat = RPNFeat(channels, channels)
        self.rpn_rois_score = _conv(channels, num_anchors, 1)
        self.rpn_rois_delta = _conv(channels, 4 * num_anchors, 1)

    def forward(
        self,
        feats: Sequence[paddle.Tensor],
        im_shape: paddle.Tensor,
        im_info: paddle.Tensor | None = None,
    ) -> dict[str, Any]:
        if len(feats) != self.anchor_generator.num_levels:
            raise ValueError(
                f"RPNHead: got {len(feats)} feature maps, anchor_generator has "
                f"{self.anchor_generator.num_levels} levels "
                f"(strides {self.anchor_generator.strides})"
            )
        scores, deltas = [], []
        for x in self.rpn_feat(feats):
            scores.append(self.rpn_rois_score(x))  # [B, A, H, W]
            deltas.append(self.rpn_rois_delta(x))  # [B, 4A, H, W]
        anchors = self.anchor_generator(scores)  # [H*W*A, 4] per level
        generator = self.train_proposal if self.training else self.test_proposal
        window = im_shape
        if generator.pixel_offset:
            if im_info is None:
                raise ValueError("RPNHead: pixel_offset proposals need im_info (v0.1's h, w)")
            window = im_info.astype(im_shape.dtype)
        order = getattr(self.anchor_generator, "proposal_order", None)
        if order is not None:  # fluid's anchor order (ties broken as fluid broke them)
            rois, rois_num = generator(*reorder_anchors(scores, deltas, anchors, order), window)
        else:
            rois, rois_num = generator(scores, deltas, anchors, window)
        return {
            "scores": scores,
            "deltas": deltas,
            "anchors": anchors,
            "rois": rois,
            "rois_num": rois_num,
            "im_shape": im_shape,
        }

    def get_loss(
        self, raw: dict[str, Any], gt_boxes: Sequence[paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        """{"loss_rpn_cls", "loss_rpn_reg"} of the raw outputs (``scores``, ``deltas``,
        ``anchors`` per level, ``im_shape``); gt_boxes[b]: [M_b, 4] real boxes of image b."""
        scores, deltas, anchors = raw["scores"], raw["deltas"], raw["anchors"]
        anchors = paddle.concat(list(anchors))  # [N, 4]
        logits = paddle.concat([flatten_level(s, 1) for s in scores], axis=1).flatten()  # [B*N]
        pred = paddle.concat([flatten_level(d, 4) for d in deltas], axis=1).reshape([-1, 4])
        labels, targets = [], []
        im_shape = raw.get("im_shape")  # [B, 2]: the border of straddling anchors
        for b, boxes in enumerate(gt_boxes):
            lab, tgt = self.rpn_target_assign(
                anchors, boxes, None if im_shape is None else im_shape[b]
            )
            labels.append(lab)
            targets.append(tgt)
        labels = paddle.concat(labels)  # [B*N]
        targets = paddle.concat(targets)  # [B*N, 4]
        valid = paddle.nonzero(labels >= 0).flatten()
        pos = paddle.nonzero(labels == 1).flatten()
        if self.loss_norm == "sampled":
            norm = float(max(valid.shape[0], 1))
        else:
            norm = float(self.rpn_target_assign.batch_size_per_im * len(gt_boxes))
        if valid.shape[0]:
            loss_cls = F.binary_cross_entropy_with_logits(
                paddle.gather(logits, valid),
                paddle.gather(labels, valid).astype("float32"),
                reduction="sum",
            )
        else:
            loss_cls = logits.sum() * 0.0
        if pos.shape[0]:
            diff = paddle.gather(pred, pos) - paddle.gather(targets, pos)
            loss_reg = smooth_l1(diff, self.loss_bbox_beta).sum()
        else:
            loss_reg = pred.sum() * 0.0
        return {"loss_rpn_cls": loss_cls / norm, "loss_rpn_reg": loss_reg / norm}
