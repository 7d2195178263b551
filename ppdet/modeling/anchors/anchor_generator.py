"""Anchor generators for RPN (C4 and FPN) and RetinaNet.

Anchors are float32 x1y1x2y2 boxes in input-image pixels, no +1 convention, with the
numbers and order of PaddleDetection 2.x (so its weights predict for the same anchors):

- per location, anchors are size-major and aspect-ratio-minor:
  ``a = size_index * len(aspect_ratios) + ratio_index``;
- an aspect ratio is h / w; a size s with ratio r gives ``w = s / sqrt(r)``, ``h = s * sqrt(r)``
  (area s^2, no rounding), centred on the location;
- location (x, y) of a level with stride t is centred at ``((x + offset) t, (y + offset) t)``;
- a level's anchors are [H * W * A, 4] in row-major location order:
  ``index = (y * W + x) * A + a``.

RetinaNet uses octave scales: at stride t, sizes ``octave_base_scale * t * 2^(k / n)`` for
k = 0..n-1 (n = ``scales_per_octave``), e.g. 32, 40.3, 50.8 at stride 8.

Shapes as (w, h) factor pairs instead of ratios (``wh_factors``, EfficientDet's "aspect
ratios" [(1.0, 1.0), (1.4, 0.7), (0.7, 1.4)] in the official implementation and in
PaddleDetection 0.5's ``AnchorGrid``): a size s with pair (fw, fh) gives ``w = s * fw``,
``h = s * fh`` (area s^2 * fw * fh, e.g. 0.98 s^2 for (1.4, 0.7)); same size-major order.

``fluid=True`` gives the anchors of fluid's ``anchor_generator`` op (PaddleDetection v0.1, the
``anchor_rounding: "fluid"`` convention), computed in float32 as its kernel does:

- base width ``round(sqrt(t^2 / r))``, base height ``round(base_width * r)`` (C rounding, halves
  away from zero: 22.5 -> 23), both scaled by ``s / t`` (so the area is not exactly s^2);
- location (x, y) centred at ``(x t + offset (t - 1), y t + offset (t - 1))`` (v0.1: offset 0.5);
- corners ``centre -+ (w - 1) / 2`` (fluid's +1 pixel widths).

The op orders a location's anchors ratio-major (``ratio_index * n_sizes + size_index``); here
they keep the 2.x order above, which is where ``ppdet.zoo.legacy`` puts the head channels of a
converted v0.1 checkpoint (``legacy_rules.RPN_C4_PERM``, ``RETINA_PERM``): the same anchors,
each in the slot of the weights that predict for it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import paddle

__all__ = [
    "AnchorCache",
    "AnchorGenerator",
    "RetinaAnchorGenerator",
    "fluid_cell_anchors",
    "grid_size",
    "wh_cell_anchors",
]

FeatureLike = paddle.Tensor | Sequence[int]


class AnchorCache:
    """The anchors already made, keyed by what fixes them (level, grid size, device): an eager
    model on images of a few sizes computes each grid once. Sizes that are tensors (a static
    graph) are not cached. At most ``size`` entries, the oldest dropped first. The cached
    tensors are shared: callers must not modify them in place (nothing here does)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.entries: dict[tuple, paddle.Tensor] = {}

    def get(self, key: tuple, make) -> paddle.Tensor:
        """``make()`` the first time ``key`` is seen (or always, when the key holds tensors)."""
        if not paddle.in_dynamic_mode() or any(isinstance(k, paddle.Tensor) for k in key):
            return make()
        key = (*key, str(paddle.get_device()))
        if key not in self.entries:
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))  # the oldest
            self.entries[key] = make()
        return self.entries[key]


def _per_level(value: Sequence, n_levels: int, what: str) -> list[list[float]]:
    """A flat list (shared by every level) or one list per level -> one list per level."""
    value = list(value)
    if not value:
        raise ValueError(f"AnchorGenerator: {what} is empty; give at least one value")
    if not isinstance(value[0], (list, tuple)):
        return [[float(v) for v in value]] * n_levels
    if len(value) == 1:
        return [[float(v) for v in value[0]]] * n_levels
    if len(value) != n_levels:
        raise ValueError(
            f"AnchorGenerator: {what} has {len(value)} levels but strides has {n_levels}; "
            "give one list per stride, or one flat list shared by all levels"
        )
    return [[float(v) for v in level] for level in value]


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> paddle.Tensor:
    """Anchors of one location centred at (0, 0).

    sizes: anchor side lengths in pixels (sqrt of the area); aspect_ratios: h / w.
    Returns float32 [len(sizes) * len(aspect_ratios), 4] x1y1x2y2, size-major.
    """
    rows = []
    for s in sizes:
        for r in aspect_ratios:
            if s <= 0 or r <= 0:
                raise ValueError(
                    f"AnchorGenerator: sizes and aspect ratios must be > 0, got {s}, {r}"
                )
            w = math.sqrt(s * s / r)  # float64, rounded to float32 once
            h = w * r
            rows.append([-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h])
    return paddle.to_tensor(rows, dtype="float32")


def wh_cell_anchors(sizes: Sequence[float], wh_factors: Sequence[Sequence[float]]) -> paddle.Tensor:
    """Anchors of one location centred at (0, 0) from (w, h) factor pairs.

    sizes: anchor base sizes in pixels; wh_factors: [(fw, fh), ...], the anchor is
    ``s * fw`` wide and ``s * fh`` high. Returns float32 [len(sizes) * len(wh_factors), 4]
    x1y1x2y2, size-major.
    """
    rows = []
    for s in sizes:
        for pair in wh_factors:
            fw, fh = _wh_pair(pair)
            if s <= 0:
                raise ValueError(f"AnchorGenerator: sizes must be > 0, got {s}")
            w, h = s * fw, s * fh
            rows.append([-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h])
    return paddle.to_tensor(rows, dtype="float32")


def _wh_pair(pair) -> tuple[float, float]:
    """(fw, fh) of one ``wh_factors`` entry, both > 0, or a clear error."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError(
            f"AnchorGenerator.wh_factors: each entry must be a (w, h) pair like [1.4, 0.7], "
            f"got {pair!r}"
        )
    fw, fh = float(pair[0]), float(pair[1])
    if fw <= 0 or fh <= 0:
        raise ValueError(f"AnchorGenerator.wh_factors: factors must be > 0, got {list(pair)}")
    return fw, fh


def fluid_cell_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], stride: float
) -> paddle.Tensor:
    """Anchors of one location centred at (0, 0) as fluid's ``anchor_generator`` makes them.

    sizes: pixels; aspect_ratios: h / w; stride: pixels of the level. Returns float32
    [len(sizes) * len(aspect_ratios), 4] x1y1x2y2 (``-+ (w - 1) / 2``), size-major (the 2.x
    order; the op itself is ratio-major). Module docstring: the rounding.
    """
    f32 = np.float32
    t = f32(stride)
    rows = []
    for s in sizes:
        for r in aspect_ratios:
            if s <= 0 or r <= 0:
                raise ValueError(
                    f"AnchorGenerator: sizes and aspect ratios must be > 0, got {s}, {r}"
                )
            base_w = np.floor(np.sqrt(f32(t * t) / f32(r)) + f32(0.5))  # C round, x >= 0
            base_h = np.floor(f32(base_w * f32(r)) + f32(0.5))
            scale = f32(f32(s) / t)
            w, h = f32(scale * base_w), f32(scale * base_h)
            half_w, half_h = 0.5 * (float(w) - 1.0), 0.5 * (float(h) - 1.0)  # the op: double
            rows.append([-half_w, -half_h, half_w, half_h])
    return paddle.to_tensor(np.asarray(rows, np.float32))


@paddle.jit.not_to_static
def grid_size(feature: FeatureLike) -> tuple:
    """(H, W) of a feature map [B, C, H, W] or of an explicit (H, W) pair.

    Sizes are Python ints, or 0-d int tensors when a static graph leaves them unknown.
    """
    if isinstance(feature, (list, tuple)):
        h, w = feature
        return int(h), int(w)
    h, w = feature.shape[-2:]
    if h is None or w is None or h < 0 or w < 0:  # unknown in a static graph
        hw = paddle.shape(feature)[-2:]
        return hw[0], hw[1]
    return int(h), int(w)


def grid_anchors(
    cells: paddle.Tensor, height, width, stride: float, offset: float, fluid: bool = False
) -> paddle.Tensor:
    """Anchors of every location of one level.

    cells: [A, 4] anchors centred at (0, 0); height, width: grid size; stride in pixels.
    Location x is centred at (x + offset) * stride, or with ``fluid`` at
    x * stride + offset * (stride - 1) (fluid's ``anchor_generator``).
    Returns float32 [height * width * A, 4], index (y * width + x) * A + a.
    """
    if fluid:
        shift = float(np.float32(offset) * np.float32(stride - 1))  # float32 as the op
        xs = paddle.arange(0, width, dtype="float32") * stride + shift  # [W]
        ys = paddle.arange(0, height, dtype="float32") * stride + shift  # [H]
    else:
        xs = (paddle.arange(0, width, dtype="float32") + offset) * stride  # [W]
        ys = (paddle.arange(0, height, dtype="float32") + offset) * stride  # [H]
    yy, xx = paddle.meshgrid(ys, xs)  # [H, W] each
    xx = xx.reshape([-1])
    yy = yy.reshape([-1])
    shifts = paddle.stack([xx, yy, xx, yy], axis=-1)  # [H*W, 4]
    anchors = shifts.unsqueeze(1) + cells.unsqueeze(0)  # [H*W, A, 4]
    return anchors.reshape([-1, 4])  # [H*W*A, 4]


class AnchorGenerator:
    """Anchors for RPN / R-CNN style heads (2.x ``AnchorGenerator`` settings).

    anchor_sizes: pixels; a flat list shared by every level (C4: [32, 64, 128, 256, 512]) or
        one list per level (FPN: [[32], [64], [128], [256], [512]]).
    aspect_ratios: h / w, flat or one list per level ([0.5, 1.0, 2.0]).
    strides: pixels per feature cell, one per level (C4: [16], FPN P2-P6: [4, 8, 16, 32, 64]).
    variance: kept for config compatibility; the box coder weights are the head's setting.
    offset: location centre in cells (0: the cell's top-left corner, 2.x default; 0.5: middle).
    fluid: fluid's ``anchor_generator`` geometry (module docstring; v0.1 checkpoints, with
        offset 0.5); declared as ``conventions = {"anchor_rounding": "fluid"}``, which the
        detector that owns the generator reports (``ppdet.modeling.conventions``).
    wh_factors: anchor shapes as (w, h) factor pairs of the size, shared by all levels
        (EfficientDet: [[1.0, 1.0], [1.4, 0.7], [0.7, 1.4]]); when given it replaces
        ``aspect_ratios`` (module docstring). None: the shapes come from ``aspect_ratios``.

    ``generator(features)`` takes one entry per level, a feature map [B, C, H, W] or an (H, W)
    pair, and returns one float32 [H * W * num_anchors, 4] tensor per level (module docstring
    gives the order). ``num_anchors`` is the count per location, the same at every level.
    Eager calls reuse the anchors of a grid size already seen (``AnchorCache``).
    """

    def __init__(
        self,
        anchor_sizes: list[float] | list[list[float]] = (32.0, 64.0, 128.0, 256.0, 512.0),
        aspect_ratios: list[float] | list[list[float]] = (0.5, 1.0, 2.0),
        strides: list[float] = (16.0,),
        variance: list[float] = (1.0, 1.0, 1.0, 1.0),
        offset: float = 0.0,
        fluid: bool = False,
        wh_factors: list[list[float]] | None = None,
    ) -> None:
        self.strides = [float(s) for s in strides]
        if not self.strides or any(s <= 0 for s in self.strides):
            raise ValueError(
                f"AnchorGenerator: strides must be positive numbers, got {list(strides)}"
            )
        n = len(self.strides)
        self.anchor_sizes = _per_level(anchor_sizes, n, "anchor_sizes")
        self.aspect_ratios = _per_level(aspect_ratios, n, "aspect_ratios")
        self.variance = [float(v) for v in variance]
        self.offset = float(offset)
        self.fluid = bool(fluid)
        self.conventions = {"anchor_rounding": "fluid"} if self.fluid else {}
        self.wh_factors = None
        if wh_factors is not None:
            if self.fluid:
                raise ValueError(
                    "AnchorGenerator: wh_factors and fluid cannot be combined (fluid's op "
                    "only knows aspect ratios); drop one of them"
                )
            if not list(wh_factors):
                raise ValueError("AnchorGenerator: wh_factors is empty; give (w, h) pairs")
            self.wh_factors = [list(_wh_pair(p)) for p in wh_factors]
            self.cell_anchors = [wh_cell_anchors(s, self.wh_factors) for s in self.anchor_sizes]
        elif self.fluid:
            self.cell_anchors = [
                fluid_cell_anchors(s, r, t)
                for s, r, t in zip(self.anchor_sizes, self.aspect_ratios, self.strides)
            ]
        else:
            self.cell_anchors = [
                cell_anchors(s, r) for s, r in zip(self.anchor_sizes, self.aspect_ratios)
            ]
        counts = sorted({c.shape[0] for c in self.cell_anchors})
        if len(counts) != 1:
            raise ValueError(
                f"AnchorGenerator: levels have different anchor counts per location {counts}; "
                "a head shared across levels needs the same number of sizes x aspect_ratios"
            )
        self.num_anchors = counts[0]
        self.cache = AnchorCache()

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def __call__(self, features: Sequence[FeatureLike]) -> list[paddle.Tensor]:
        features = list(features)
        if len(features) != self.num_levels:
            raise ValueError(
                f"{type(self).__name__}: got {len(features)} feature levels, "
                f"configured for {self.num_levels} (strides {self.strides})"
            )
        out = []
        for level, (feature, cells, stride) in enumerate(
            zip(features, self.cell_anchors, self.strides)
        ):
            h, w = grid_size(feature)
            make = functools.partial(grid_anchors, cells, h, w, stride, self.offset, self.fluid)
            out.append(self.cache.get((level, h, w), make))
        return out

    forward = __call__

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(anchor_sizes={self.anchor_sizes}, "
            + (
                f"wh_factors={self.wh_factors}, "
                if self.wh_factors is not None
                else f"aspect_ratios={self.aspect_ratios}, "
            )
            + f"strides={self.strides}, offset={self.offset}"
            + (", fluid=True)" if self.fluid else ")")
        )


class RetinaAnchorGenerator(AnchorGenerator):
    """RetinaNet anchors (2.x ``RetinaAnchorGenerator`` settings): octave scales per level.

    At stride t the sizes are ``octave_base_scale * t * 2^(k / scales_per_octave)``,
    k = 0..scales_per_octave-1; defaults give 9 anchors per location on P3-P7
    (strides 8..128, sizes 32..812.7). Other arguments as in ``AnchorGenerator`` (v0.1's
    RetinaNet: ``fluid: true, offset: 0.5``; EfficientDet: ``wh_factors: [[1.0, 1.0],
    [1.4, 0.7], [0.7, 1.4]], offset: 0.5``).
    """

    def __init__(
        self,
        octave_base_scale: float = 4.0,
        scales_per_octave: int = 3,
        aspect_ratios: list[float] | list[list[float]] = (0.5, 1.0, 2.0),
        strides: list[float] = (8.0, 16.0, 32.0, 64.0, 128.0),
        variance: list[float] = (1.0, 1.0, 1.0, 1.0),
        offset: float = 0.0,
        fluid: bool = False,
        wh_factors: list[list[float]] | None = None,
    ) -> None:
        if scales_per_octave < 1 or octave_base_scale <= 0:
            raise ValueError(
                "RetinaAnchorGenerator: scales_per_octave must be >= 1 and octave_base_scale > 0, "
                f"got {scales_per_octave}, {octave_base_scale}"
            )
        self.octave_base_scale = float(octave_base_scale)
        self.scales_per_octave = int(scales_per_octave)
        sizes = [
            [
                self.octave_base_scale * float(t) * 2.0 ** (k / self.scales_per_octave)
                for k in range(self.scales_per_octave)
            ]
            for t in strides
        ]
        super().__init__(sizes, aspect_ratios, strides, variance, offset, fluid, wh_factors)
