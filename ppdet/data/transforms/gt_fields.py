"""The per-box ground-truth fields of a sample, kept aligned when boxes are dropped or added.

``gt_poly`` (instance segmentation, optional) is a Python list with one item per box: the
object's polygons, each a float32 array [2K] (x1, y1, x2, y2, ... in pixels of the current
image). Geometric transforms move it with the same map as ``gt_bbox``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Every per-box array of a sample: row i of each describes box i.
GT_FIELDS = ("gt_bbox", "gt_class", "gt_score", "is_crowd", "difficult")
POLY_KEY = "gt_poly"


def select_gt(sample: dict, keep: np.ndarray) -> dict:
    """Keep the boxes selected by ``keep`` (bool mask [M] or index array) in every gt field,
    ``gt_poly`` included."""
    for key in GT_FIELDS:
        if key in sample:
            sample[key] = sample[key][keep]
    if POLY_KEY in sample:
        keep = np.asarray(keep)
        index = np.nonzero(keep)[0] if keep.dtype == bool else keep.reshape(-1)
        polys = sample[POLY_KEY]
        sample[POLY_KEY] = [polys[int(i)] for i in index]
    return sample


def num_gt(sample: dict) -> int:
    """Number of boxes in the sample (0 when it has no ``gt_bbox``)."""
    return len(sample["gt_bbox"]) if "gt_bbox" in sample else 0


def map_polys(
    sample: dict, fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> None:
    """Apply ``fn(xs, ys) -> (xs, ys)`` to every polygon of ``sample["gt_poly"]`` (if any)."""
    if POLY_KEY not in sample:
        return
    out = []
    for obj in sample[POLY_KEY]:
        moved = []
        for poly in obj:
            poly = np.asarray(poly, np.float32).reshape(-1)
            xs, ys = fn(poly[0::2], poly[1::2])
            new = np.empty(len(poly), np.float32)
            new[0::2], new[1::2] = xs, ys
            moved.append(new)
        out.append(moved)
    sample[POLY_KEY] = out


def polygon_area(poly: np.ndarray) -> float:
    """Area (shoelace, absolute) of a polygon [2K] in square pixels."""
    poly = np.asarray(poly, np.float64).reshape(-1)
    xs, ys = poly[0::2], poly[1::2]
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def clip_polygon(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The part of polygon [2K] inside the rectangle [x0, x1] x [y0, y1] (Sutherland-Hodgman).

    Returns a float32 [2K'] polygon; fewer than 3 vertices or zero area means nothing is left
    (an empty array is returned then).
    """
    pts = np.asarray(poly, np.float64).reshape(-1, 2).tolist()
    # each edge: (axis, limit, keep_greater)
    for axis, limit, greater in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            break

        def inside(p: list[float]) -> bool:
            return p[axis] >= limit if greater else p[axis] <= limit

        result = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                cross = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                cross[axis] = limit
                result.append(cross)
            if inside(cur):
                result.append(cur)
        pts = result
    out = np.asarray(pts, np.float32).reshape(-1)
    if len(out) < 6 or polygon_area(out) <= 0:
        return np.zeros(0, np.float32)
    return out
