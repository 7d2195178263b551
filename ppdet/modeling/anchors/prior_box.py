"""SSD prior boxes (2.x ``AnchorGeneratorSSD`` settings), in fractions of the image size.

For each level, each location (x, y) is centred at ``((x + offset) sx, (y + offset) sy)``
pixels, where ``sx = sy = steps[level]``, or image size / feature size when the step is 0.
Its priors, for each min size s of the level (i = its index), in this order:

- ``min_max_aspect_ratios_order=False``: one box per expanded aspect ratio r (1 first), of
  width ``s sqrt(r)`` and height ``s / sqrt(r)``; then, if the level has max sizes, a square
  of side ``sqrt(s * max_sizes[i])``;
- ``True``: the square s, the max square, then the other ratios.

The expanded aspect ratios are 1, then each configured r (and 1 / r with ``flip``), skipping
duplicates. A level's priors are [H * W * P, 4] x1y1x2y2 divided by the image width/height,
index ``(y * W + x) * P + p``; ``clip`` clips them to [0, 1].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import paddle

from .anchor_generator import AnchorCache, FeatureLike, grid_size

__all__ = ["AnchorGeneratorSSD", "expand_aspect_ratios", "ssd_sizes_from_ratios"]


def expand_aspect_ratios(aspect_ratios: Sequence[float], flip: bool) -> list[float]:
    """[1, r1, (1/r1), r2, (1/r2), ...] without near-duplicates (|a - b| < 1e-6)."""
    out = [1.0]
    for r in aspect_ratios:
        r32 = np.float32(r)
        for v in (float(r32), float(np.float32(1) / r32)) if flip else (float(r32),):
            if all(abs(v - o) >= 1e-6 for o in out):
                out.append(v)
    return out


def ssd_sizes_from_ratios(
    num_levels: int, min_ratio: int, max_ratio: int, base_size: int
) -> tuple[list[float], list[float]]:
    """Min/max sizes (pixels) spread between min_ratio and max_ratio percent of base_size.

    The first level gets 10% / 20% of base_size; the others step evenly from min_ratio
    (the original SSD recipe). Needs at least 3 levels.
    """
    if num_levels < 3:
        raise ValueError(
            f"AnchorGeneratorSSD: deriving sizes from min_ratio/max_ratio needs >= 3 levels, "
            f"got {num_levels}; give min_sizes and max_sizes"
        )
    step = math.floor((max_ratio - min_ratio) / (num_levels - 2))
    min_sizes = [base_size * 0.10]
    max_sizes = [base_size * 0.20]
    for ratio in range(min_ratio, max_ratio + 1, step):
        min_sizes.append(base_size * ratio / 100.0)
        max_sizes.append(base_size * (ratio + step) / 100.0)
    return min_sizes, max_sizes


def _as_list(value) -> list[float]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    return [float(value)]


@paddle.jit.not_to_static
def _div(a, b):
    """a / b for ints or 0-d int tensors (float32 then)."""
    if isinstance(a, int) and isinstance(b, int):
        return a / b
    return paddle.cast(a, "float32") / paddle.cast(b, "float32")


@paddle.jit.not_to_static
def _image_scale(img_h, img_w) -> paddle.Tensor:
    """[4] float32 (w, h, w, h) from ints or 0-d tensors (sizes unknown in a static graph)."""
    if isinstance(img_h, int) and isinstance(img_w, int):
        return paddle.to_tensor([img_w, img_h, img_w, img_h], dtype="float32")
    w = paddle.to_tensor(img_w).astype("float32").reshape([1])
    h = paddle.to_tensor(img_h).astype("float32").reshape([1])
    return paddle.concat([w, h, w, h])


class AnchorGeneratorSSD:
    """SSD prior boxes per level; see the module docstring for the layout.

    steps: pixels per feature cell per level (0: image size / feature size).
    aspect_ratios: per level, the ratios besides 1 (e.g. [[2.], [2., 3.], ...]).
    min_sizes, max_sizes: per level, pixels; a number or a list (several min sizes per level);
        an empty max entry ([]) means no max prior at that level. If both are empty, they come
        from min_ratio, max_ratio and base_size (``ssd_sizes_from_ratios``).
    offset: location centre in cells; flip: add 1 / r; clip: clip to [0, 1].

    ``generator(features, image)``: features, one [B, C, H, W] map or (H, W) pair per level;
    image, the input [B, 3, H, W] or its (H, W). Returns one float32 [H * W * P, 4] tensor per
    level, in fractions of the image. ``num_priors[level]`` is P.
    """

    def __init__(
        self,
        steps: list[float] = (8, 16, 32, 64, 100, 300),
        aspect_ratios: list[list[float]] = (
            [2.0],
            [2.0, 3.0],
            [2.0, 3.0],
            [2.0, 3.0],
            [2.0],
            [2.0],
        ),
        min_ratio: int = 15,
        max_ratio: int = 90,
        base_size: int = 300,
        min_sizes: list[float | list[float]] = (30.0, 60.0, 111.0, 162.0, 213.0, 264.0),
        max_sizes: list[float | list[float]] = (60.0, 111.0, 162.0, 213.0, 264.0, 315.0),
        offset: float = 0.5,
        flip: bool = True,
        clip: bool = False,
        min_max_aspect_ratios_order: bool = False,
    ) -> None:
        self.steps = [float(s) for s in steps]
        n = len(self.steps)
        if len(aspect_ratios) != n:
            raise ValueError(
                f"AnchorGeneratorSSD: aspect_ratios has {len(aspect_ratios)} levels, steps has {n}"
            )
        if not min_sizes and not max_sizes:
            min_sizes, max_sizes = ssd_sizes_from_ratios(n, min_ratio, max_ratio, base_size)
        if len(min_sizes) != n or (max_sizes and len(max_sizes) != n):
            raise ValueError(
                f"AnchorGeneratorSSD: min_sizes ({len(min_sizes)}) and max_sizes "
                f"({len(max_sizes)}) need one entry per level ({n} steps)"
            )
        self.min_sizes = [_as_list(v) for v in min_sizes]
        self.max_sizes = [_as_list(v) for v in max_sizes] if max_sizes else [[] for _ in range(n)]
        for lvl, (mins, maxs) in enumerate(zip(self.min_sizes, self.max_sizes)):
            if not mins or (maxs and len(maxs) != len(mins)):
                raise ValueError(
                    f"AnchorGeneratorSSD: level {lvl} has min_sizes {mins} and max_sizes {maxs}; "
                    "give at least one min size and either no max size or one per min size"
                )
        self.aspect_ratios = [[float(r) for r in level] for level in aspect_ratios]
        self.offset = float(offset)
        self.flip = bool(flip)
        self.clip = bool(clip)
        self.min_max_aspect_ratios_order = bool(min_max_aspect_ratios_order)
        self._half_sizes = [self._cell(lvl) for lvl in range(n)]  # per level [(hw, hh), ...]
        self.num_priors = [len(c) for c in self._half_sizes]
        self.cache = AnchorCache()

    def _cell(self, level: int) -> list[tuple[float, float]]:
        """Half widths and heights (pixels) of one location's priors, in output order.

        Computed in float32 arithmetic, as 2.x does, so the priors match it bit for bit.
        """
        f32 = np.float32
        ratios = [f32(r) for r in expand_aspect_ratios(self.aspect_ratios[level], self.flip)]
        out = []
        for i, s in enumerate(self.min_sizes[level]):
            s = f32(s)
            square_max = []
            if self.max_sizes[level]:
                m = np.sqrt(s * f32(self.max_sizes[level][i])) / f32(2)
                square_max = [(m, m)]
            by_ratio = [(s * np.sqrt(r) / f32(2), s / np.sqrt(r) / f32(2)) for r in ratios]
            if self.min_max_aspect_ratios_order:
                out += by_ratio[:1] + square_max + by_ratio[1:]
            else:
                out += by_ratio + square_max
        return [(float(w), float(h)) for w, h in out]

    def __call__(self, features: Sequence[FeatureLike], image: FeatureLike) -> list[paddle.Tensor]:
        features = list(features)
        if len(features) != len(self.steps):
            raise ValueError(
                f"AnchorGeneratorSSD: got {len(features)} feature levels, "
                f"configured for {len(self.steps)} (steps {self.steps})"
            )
        img_h, img_w = grid_size(image)
        out = []
        for level, feature in enumerate(features):
            h, w = grid_size(feature)
            make = functools.partial(self._level, level, h, w, img_h, img_w)
            out.append(self.cache.get((level, h, w, img_h, img_w), make))
        return out

    def _level(self, level: int, h, w, img_h, img_w) -> paddle.Tensor:
        """[h * w * P, 4] priors of one level (sizes: ints, or 0-d tensors in a static graph)."""
        step, half = self.steps[level], self._half_sizes[level]
        step_w = step if step > 0 else _div(img_w, w)
        step_h = step if step > 0 else _div(img_h, h)
        xs = (paddle.arange(0, w, dtype="float32") + self.offset) * step_w  # [W] pixels
        ys = (paddle.arange(0, h, dtype="float32") + self.offset) * step_h  # [H]
        yy, xx = paddle.meshgrid(ys, xs)  # [H, W] each
        centres = paddle.stack([xx, yy, xx, yy], axis=-1).reshape([-1, 1, 4])  # [H*W, 1, 4]
        cell = paddle.to_tensor([[-hw, -hh, hw, hh] for hw, hh in half], dtype="float32")  # [P, 4]
        scale = _image_scale(img_h, img_w)  # [4]
        boxes = ((centres + cell.unsqueeze(0)) / scale).reshape([-1, 4])  # [H*W*P, 4]
        return boxes.clip(0.0, 1.0) if self.clip else boxes

    forward = __call__
