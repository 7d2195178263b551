"""The Mask R-CNN mask head: RoIAlign features -> MaskFeat (convs + 2x transposed conv) -> one
sigmoid mask per class.

Parameter names are PaddleDetection 2.x's: ``head.upsample.mask_inter_feat_{1..n}`` (3x3
convs, ReLU), ``head.upsample.conv5_mask`` (Conv2DTranspose 2x2 stride 2, ReLU; weight
[in, out, 2, 2]) and ``mask_fcn_logits`` (1x1 conv, C outputs: one mask per class, no
background). FPN: 4 convs on 14x14 RoI features -> 28x28 masks. C4 (``share_bbox_feat``): no
convs; the features are those of the box head's res5 ([R, 2048, 7, 7]) -> 14x14 masks.

Training: the foreground RoIs of the box head's sample get targets from ``MaskAssigner``;
``loss_mask`` is the binary cross-entropy of each RoI's own-class logits against its target,
averaged over all F x M x M pixels. Eval: the final detections (input pixels) are the RoIs;
the output is the sigmoid of each detection's own-class mask, [N, M, M].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import KaimingNormal

from ppdet.config.registry import register
from ppdet.modeling.assigners.mask_target import MaskAssigner
from ppdet.modeling.heads.bbox_head import RoIAlign
from ppdet.modeling.postprocess.bbox import count_per_image, image_of_rows

__all__ = ["MaskFeat", "MaskHead"]


@register("head")
class MaskFeat(nn.Layer):
    """[R, in_channel, s, s] -> num_convs x (3x3 conv + ReLU) -> 2x2/2 transposed conv + ReLU
    -> [R, out_channel, 2s, 2s]. ``norm_type`` is a 2.x key; only None is implemented."""

    def __init__(
        self,
        in_channel: int = 256,
        out_channel: int = 256,
        num_convs: int = 4,
        norm_type: str | None = None,
    ) -> None:
        super().__init__()
        if norm_type is not None:
            raise ValueError(f"MaskFeat: norm_type {norm_type!r} is not implemented (use null)")
        layers: list[tuple[str, nn.Layer]] = []
        channel = in_channel
        for i in range(1, num_convs + 1):
            conv = nn.Conv2D(
                channel,
                out_channel,
                3,
                padding=1,
                weight_attr=ParamAttr(initializer=KaimingNormal(fan_in=channel * 9)),
            )
            layers += [(f"mask_inter_feat_{i}", conv), (f"mask_inter_relu_{i}", nn.ReLU())]
            channel = out_channel
        deconv = nn.Conv2DTranspose(
            channel,
            out_channel,
            2,
            stride=2,
            weight_attr=ParamAttr(initializer=KaimingNormal(fan_in=out_channel * 4)),
        )
        layers += [("conv5_mask", deconv), ("conv5_relu", nn.ReLU())]
        self.upsample = nn.Sequential(*layers)
        self.out_channel = out_channel

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.upsample(x)


@register("head")
class MaskHead(nn.Layer):
    """Mask head (module docstring).

    - training: ``forward(feats, sample)`` with the box head's sample (``BBoxHead`` raw
      "sample": rois, rois_num, labels, and "feat" [S, F, h, w] used when
      ``share_bbox_feat``) -> raw {"logits", "rois", "rois_num"} of the foreground RoIs;
      ``get_loss(raw, gt_boxes, gt_polys)`` -> {"loss_mask"};
    - eval: ``predict(feats, boxes [N, 4] input pixels, boxes_num [B], classes [N], feat_func)``
      -> [N, M, M] probabilities of each box's class (``feat_func``: the box head's head, run
      on the RoI features when ``share_bbox_feat``).

    Args (2.x keys): head (MaskFeat), roi_extractor (``RoIAlign`` arguments), mask_assigner
    (MaskAssigner), num_classes, share_bbox_feat; in_channels / spatial_scales / bbox_channel
    are filled by the architecture.
    """

    __shared__ = ["num_classes"]

    def __init__(
        self,
        head: nn.Layer,
        roi_extractor: dict | None = None,
        mask_assigner: Any = None,
        num_classes: int = 80,
        share_bbox_feat: bool = False,
        spatial_scales: Sequence[float] = (0.0625,),
        in_channels: Sequence[int] | None = None,
        bbox_channel: int | None = None,
    ) -> None:
        super().__init__()
        self.head = head
        spec = dict(roi_extractor or {})
        spec.pop("name", None)
        spec.setdefault("spatial_scale", list(spatial_scales))
        self.roi_extractor = RoIAlign(**spec)
        self.conventions = dict(self.roi_extractor.conventions)  # fluid-era ones, if any
        self.mask_assigner = mask_assigner or MaskAssigner(num_classes=num_classes)
        self.conventions.update(getattr(self.mask_assigner, "conventions", {}))
        self.num_classes = int(num_classes)
        self.share_bbox_feat = bool(share_bbox_feat)
        self.mask_fcn_logits = nn.Conv2D(
            head.out_channel,
            self.num_classes,
            1,
            weight_attr=ParamAttr(initializer=KaimingNormal(fan_in=self.num_classes)),
        )

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> MaskHead:
        """MaskFeat's in_channel: the box head's output channels when sharing its features,
        else the feature maps' channels."""
        args = dict(args)
        in_channels = list(args.get("in_channels") or [256])
        channel = in_channels[0]
        if args.get("share_bbox_feat"):
            if args.get("bbox_channel") is None:
                raise ValueError("MaskHead: share_bbox_feat needs the box head's channels")
            channel = int(args["bbox_channel"])
        args["head"] = build(args.get("head", "MaskFeat"), in_channel=channel)
        if "mask_assigner" in args:
            args["mask_assigner"] = build(args["mask_assigner"])
        return cls(**args)

    def logits(self, x: paddle.Tensor, classes: paddle.Tensor) -> paddle.Tensor:
        """Features [R, F, s, s], classes [R] -> own-class mask logits [R, M, M]."""
        out = self.mask_fcn_logits(self.head(x))  # [R, C, M, M]
        cls = classes.astype("int64").reshape([-1, 1, 1, 1])
        return paddle.take_along_axis(out, cls, axis=1).squeeze(1)  # [R, M, M]

    def select_foreground(self, labels: paddle.Tensor) -> paddle.Tensor:
        """labels [S] of the box head's sample (class, ``num_classes`` background, -1
        ignored) -> index [F] int64 of its foreground RoIs."""
        labels = labels.astype("int64")
        return paddle.nonzero((labels >= 0) & (labels < self.num_classes)).flatten()

    def forward(
        self, feats: Sequence[paddle.Tensor], sample: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        """Training: the box head's ``sample`` ({"rois" [S, 4], "rois_num" [B], "labels" [S],
        "feat": head features [S, F(, h, w)]}) -> raw {"logits": [F, M, M] own-class mask
        logits of the foreground RoIs, "rois": [F, 4], "rois_num": [B]}."""
        index = self.select_foreground(sample["labels"])  # [F]
        rois = paddle.gather(sample["rois"], index)  # [F, 4]
        image = paddle.gather(image_of_rows(sample["rois_num"]), index)  # [F]
        rois_num = count_per_image(image, paddle.ones_like(image, "bool"), sample["rois_num"])
        classes = paddle.gather(sample["labels"], index)  # [F]
        if self.share_bbox_feat:
            x = paddle.gather(sample["feat"], index)  # [F, 2048, 7, 7]
        else:
            x = self.roi_extractor(feats, rois, rois_num)  # [F, C, s, s]
        return {"logits": self.logits(x, classes), "rois": rois, "rois_num": rois_num}

    def get_loss(
        self,
        raw: dict[str, paddle.Tensor],
        gt_boxes: Sequence[paddle.Tensor],
        gt_polys: Sequence[Sequence[Sequence[np.ndarray]]],
    ) -> dict[str, paddle.Tensor]:
        """{"loss_mask"}: BCE of the logits against ``mask_assigner`` targets (the polygons of
        each RoI's gt object, gt_boxes[b] [M_b, 4] / gt_polys[b] per image)."""
        logits = raw["logits"]  # [F, M, M]
        if logits.shape[0] == 0:  # no foreground RoI: a zero loss that keeps the graph
            return {"loss_mask": self.mask_fcn_logits.weight.sum() * 0.0}
        targets = self.mask_assigner(raw["rois"], raw["rois_num"], gt_boxes, gt_polys)
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="mean")
        return {"loss_mask": loss}

    def predict(
        self,
        feats: Sequence[paddle.Tensor],
        boxes: paddle.Tensor,
        boxes_num: paddle.Tensor,
        classes: paddle.Tensor,
        feat_func: Callable[[paddle.Tensor], paddle.Tensor] | None = None,
    ) -> paddle.Tensor:
        """boxes [N, 4] input pixels, boxes_num [B], classes [N] -> [N, M, M] in [0, 1]."""
        if boxes.shape[0] == 0:
            m = 2 * self.roi_extractor.resolution
            if self.share_bbox_feat:
                m = self.roi_extractor.resolution  # res5 halves, the deconv doubles
            return paddle.zeros([0, m, m], "float32")
        x = self.roi_extractor(feats, boxes, boxes_num)
        if self.share_bbox_feat and feat_func is not None:
            x = feat_func(x)  # C4: res5 -> [N, 2048, 7, 7]
        return F.sigmoid(self.logits(x, classes))
