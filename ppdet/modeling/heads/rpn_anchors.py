"""RPN anchors the fluid way (PaddleDetection v0.1's ``anchor_generator`` op), in the 2.x
anchor order, for converted v0.1 R-CNN weights (fluid-era convention ``anchor_rounding``).

fluid's anchors differ from 2.x's (``ppdet.modeling.anchors.AnchorGenerator``) in geometry
only; the order here stays 2.x's (size-major, ``a = size_i * len(ratios) + ratio_i``; the
converter permutes v0.1's ratio-major RPN channels to it). At a level of stride t, for size s
and aspect ratio r (h / w):

- base width ``bw = round(sqrt(t^2 / r))`` and height ``bh = round(bw * r)`` (C ``round``:
  halves away from zero), scaled: ``w = s / t * bw``, ``h = s / t * bh``;
- location (x, y) is centred at ``(x t + offset (t - 1), y t + offset (t - 1))`` (v0.1:
  offset 0.5);
- corners ``centre -+ (w - 1) / 2`` (the +1 pixel convention: the box is w pixels wide).

fluid enumerated a location's anchors ratio-major (``ratio_i * len(sizes) + size_i``); with
several sizes and ratios (C4) ``proposal_order`` lists our anchor indices in that order, and
``RPNHead`` generates the proposals in it, so that equal scores (saturated objectness) break
ties as fluid's ``generate_proposals`` broke them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import paddle

from ppdet.modeling.anchors import AnchorGenerator
from ppdet.modeling.anchors.anchor_generator import grid_anchors, grid_size

__all__ = ["FluidAnchorGenerator", "fluid_cell_anchors"]


def _c_round(x: float) -> float:
    """C's ``round``: halves away from zero (22.5 -> 23, where Python gives 22)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def fluid_cell_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], stride: float, offset: float
) -> paddle.Tensor:
    """fluid's anchors of the location (0, 0) of a level with ``stride`` (module docstring):
    float32 [len(sizes) * len(aspect_ratios), 4] x1y1x2y2 input pixels, size-major."""
    centre = offset * (stride - 1)
    rows = []
    for s in sizes:
        for r in aspect_ratios:
            if s <= 0 or r <= 0:
                raise ValueError(
                    f"FluidAnchorGenerator: sizes and aspect ratios must be > 0, got {s}, {r}"
                )
            base_w = _c_round(math.sqrt(stride * stride / r))
            base_h = _c_round(base_w * r)
            half_w = (s / stride * base_w - 1) / 2
            half_h = (s / stride * base_h - 1) / 2
            rows.append([centre - half_w, centre - half_h, centre + half_w, centre + half_h])
    return paddle.to_tensor(rows, dtype="float32")


class FluidAnchorGenerator(AnchorGenerator):
    """``AnchorGenerator`` (same arguments, call and output: one [H * W * A, 4] tensor per
    level, index (y * W + x) * A + a) with fluid's geometry (module docstring); ``offset``
    defaults to fluid's 0.5."""

    conventions = {"anchor_rounding": "fluid"}

    def __init__(
        self,
        anchor_sizes: list[float] | list[list[float]] = (32.0, 64.0, 128.0, 256.0, 512.0),
        aspect_ratios: list[float] | list[list[float]] = (0.5, 1.0, 2.0),
        strides: list[float] = (16.0,),
        variance: list[float] = (1.0, 1.0, 1.0, 1.0),
        offset: float = 0.5,
    ) -> None:
        super().__init__(anchor_sizes, aspect_ratios, strides, variance, offset)
        self.cell_anchors = [
            fluid_cell_anchors(s, r, t, self.offset)
            for s, r, t in zip(self.anchor_sizes, self.aspect_ratios, self.strides, strict=True)
        ]
        sizes, ratios = len(self.anchor_sizes[0]), len(self.aspect_ratios[0])
        # fluid index f = ratio_i * sizes + size_i holds our anchor size_i * ratios + ratio_i
        order = [(f % sizes) * ratios + f // sizes for f in range(sizes * ratios)]
        self.proposal_order = order if order != sorted(order) else None

    def __call__(self, features) -> list[paddle.Tensor]:
        features = list(features)
        if len(features) != self.num_levels:
            raise ValueError(
                f"{type(self).__name__}: got {len(features)} feature levels, "
                f"configured for {self.num_levels} (strides {self.strides})"
            )
        out = []
        for level in range(self.num_levels):
            h, w = grid_size(features[level])
            # the cells carry the centre offset already: the grid starts at 0
            cells, stride = self.cell_anchors[level], self.strides[level]
            make = functools.partial(grid_anchors, cells, h, w, stride, 0.0)
            out.append(self.cache.get((level, h, w), make))
        return out

    forward = __call__
