"""RPN anchors the fluid way (PaddleDetection v0.1's ``anchor_generator`` op) for converted
v0.1 R-CNN weights: ``AnchorGenerator(fluid=True)`` (geometry and rounding in
``ppdet.modeling.anchors.anchor_generator``; convention ``anchor_rounding``), offset 0.5, plus
the order in which fluid enumerated a location's anchors.

The anchors stay in the 2.x order (size-major, ``a = size_i * len(ratios) + ratio_i``; the
converter permutes v0.1's ratio-major RPN channels to it). fluid enumerated them ratio-major
(``ratio_i * len(sizes) + size_i``); with several sizes and ratios (C4) ``proposal_order``
lists our anchor indices in that order, and ``RPNHead`` generates the proposals in it, so
that equal scores (saturated objectness) break ties as fluid's ``generate_proposals`` did.
"""

from __future__ import annotations

from ppdet.modeling.anchors import AnchorGenerator

__all__ = ["FluidAnchorGenerator"]


class FluidAnchorGenerator(AnchorGenerator):
    """``AnchorGenerator`` (same arguments, call and output: one [H * W * A, 4] tensor per
    level, index (y * W + x) * A + a) with fluid's geometry; ``offset`` defaults to fluid's
    0.5; ``proposal_order``: fluid's enumeration of a location's anchors, or None when it is
    ours (one size or one ratio)."""

    def __init__(
        self,
        anchor_sizes: list[float] | list[list[float]] = (32.0, 64.0, 128.0, 256.0, 512.0),
        aspect_ratios: list[float] | list[list[float]] = (0.5, 1.0, 2.0),
        strides: list[float] = (16.0,),
        variance: list[float] = (1.0, 1.0, 1.0, 1.0),
        offset: float = 0.5,
    ) -> None:
        super().__init__(anchor_sizes, aspect_ratios, strides, variance, offset, fluid=True)
        sizes, ratios = len(self.anchor_sizes[0]), len(self.aspect_ratios[0])
        # fluid index f = ratio_i * sizes + size_i holds our anchor size_i * ratios + ratio_i
        order = [(f % sizes) * ratios + f // sizes for f in range(sizes * ratios)]
        self.proposal_order = order if order != sorted(order) else None
