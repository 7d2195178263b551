"""Small line charts drawn with OpenCV (no plotting library needed): training curves and
precision-recall curves are pictures people look at rather than read.

A chart is a BGR uint8 image [H, W, 3]; ``grid`` tiles several into one; ``write_png`` saves
atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2
import numpy as np

from ppdet.atomic_io import atomic_path

__all__ = ["Series", "grid", "line_chart", "log_ticks", "nice_ticks", "write_png"]

# Tableau-like colours, BGR.
COLOURS = [
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
    (34, 189, 188),
    (207, 190, 23),
]
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Series:
    """One polyline: ``x`` [N] and ``y`` [N] in data units, a legend ``name``."""

    def __init__(self, name: str, x: Sequence[float], y: Sequence[float]) -> None:
        self.name = name
        self.x = np.asarray(x, dtype=np.float64).reshape(-1)
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        if self.x.shape != self.y.shape:
            raise ValueError(f"series {name!r}: x has {self.x.size} points, y has {self.y.size}")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick positions in log10 units for the values 1, 2, 5 x 10^k within [lo, hi] (only the
    powers of ten when that would be more than 8 ticks)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    decades = range(math.floor(lo) - 1, math.ceil(hi) + 1)
    for mantissas in ((1, 2, 5), (1,)):
        ticks = [math.log10(m) + k for k in decades for m in mantissas]
        ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
        if len(ticks) <= 8:
            break
    return ticks or [lo]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}"
    return f"{value:g}"


def line_chart(
    series: Sequence[Series],
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    size: tuple[int, int] = (480, 640),
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
    x_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """A line chart [H, W, 3] BGR uint8 of the finite points of every series.

    log_y: plot log10(y) (non-positive values are dropped). y_range / x_range fix the axes
    (data units), else they span the data.
    """
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 40, 50
    cv2.putText(img, title, (left, 25), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    pts = []
    for s in series:
        y = s.y
        ok = np.isfinite(s.x) & np.isfinite(y)
        if log_y:
            ok &= y > 0
            y = np.log10(np.where(y > 0, y, 1.0))
        pts.append((s.x[ok], y[ok]))
    xs = np.concatenate([p[0] for p in pts]) if pts else np.zeros(0)
    ys = np.concatenate([p[1] for p in pts]) if pts else np.zeros(0)
    if x_range is not None:
        x0, x1 = x_range
    else:
        x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if y_range is not None:
        y0, y1 = (math.log10(v) for v in y_range) if log_y else y_range
    else:
        y0, y1 = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x0 + 0.5
    if y1 <= y0:
        pad = abs(y0) * 0.1 or 0.5
        y0, y1 = y0 - pad, y1 + pad
    elif y_range is None:  # a little air above and below the data
        pad = (y1 - y0) * 0.04
        y0, y1 = y0 - pad, y1 + pad

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x0) / (x1 - x0) * (w - left - right)
        py = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
        return np.stack([px, py], -1).round().astype(np.int32)  # [N, 2]

    grey, black = (220, 220, 220), (0, 0, 0)
    for t in log_ticks(y0, y1) if log_y else nice_ticks(y0, y1):
        (_, py) = to_px(np.array([x0]), np.array([t]))[0]
        cv2.line(img, (left, int(py)), (w - right, int(py)), grey, 1)
        text = _label(10**t) if log_y else _label(t)
        cv2.putText(img, text, (5, int(py) + 4), FONT, 0.4, black, 1, cv2.LINE_AA)
    for t in nice_ticks(x0, x1):
        (px, _) = to_px(np.array([t]), np.array([y0]))[0]
        cv2.line(img, (int(px), top), (int(px), h - bottom), grey, 1)
        cv2.putText(img, _label(t), (int(px) - 12, h - bottom + 16), FONT, 0.4, black, 1)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), black, 1)
    cv2.putText(img, xlabel, (w // 2 - 30, h - 10), FONT, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(img, ylabel + (" (log)" if log_y else ""), (5, top - 8), FONT, 0.4, black, 1)
    for i, (x, y) in enumerate(pts):
        colour = COLOURS[i % len(COLOURS)]
        if x.size:
            p = to_px(x, y)
            cv2.polylines(img, [p.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
            if x.size == 1:
                cv2.circle(img, tuple(int(v) for v in p[0]), 3, colour, -1)
    # legend, top right, on white
    x_box = w - right - 155
    cv2.rectangle(
        img, (x_box, top + 3), (w - right - 3, top + 8 + 16 * len(series)), (255,) * 3, -1
    )
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        ly = top + 16 + 16 * i
        cv2.line(img, (w - right - 150, ly - 4), (w - right - 130, ly - 4), colour, 2)
        cv2.putText(img, s.name[:22], (w - right - 125, ly), FONT, 0.4, black, 1, cv2.LINE_AA)
    return img


def grid(charts: Sequence[np.ndarray], cols: int = 2) -> np.ndarray:
    """Tile equally sized charts row by row into one image (empty cells stay white)."""
    if not charts:
        raise ValueError("grid: no charts")
    h, w = charts[0].shape[:2]
    rows = math.ceil(len(charts) / cols)
    cols = min(cols, len(charts))
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, c in enumerate(charts):
        r, k = divmod(i, cols)
        out[r * h : (r + 1) * h, k * w : (k + 1) * w] = c
    return out


def write_png(path: str, image: np.ndarray) -> str:
    """Encode ``image`` as PNG and write it atomically; returns ``path``."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode a PNG for {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.tobytes())
    return path
