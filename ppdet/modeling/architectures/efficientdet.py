"""EfficientDet (Tan et al. 2020): EfficientNet backbone -> BiFPN -> EfficientDetHead, with
RetinaNet's anchors, focal loss, decoding and NMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ppdet.config.registry import register
from ppdet.modeling.architectures.retinanet import RetinaNet

__all__ = ["EfficientDet"]


@register("architecture")
class EfficientDet(RetinaNet):
    """``RetinaNet`` (same forward / loss / postprocess contract) whose parts default to
    ``EfficientNet``, ``BiFPN`` and ``EfficientDetHead``; any of them can be swapped in the
    config (seed 001 also trains this head on ResNet-50)."""

    @classmethod
    def from_config(cls, args: dict[str, Any], build: Callable[..., Any]) -> EfficientDet:
        backbone = build(args.get("backbone", "EfficientNet"))
        neck = build(args.get("neck", "BiFPN"), in_channels=backbone.out_channels)
        head = build(args.get("head", "EfficientDetHead"), in_channels=neck.out_channels)
        return cls(backbone, neck, head)
