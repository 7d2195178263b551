"""Precision-recall curve pictures of a class-wise evaluation: one PNG per set of classes."""

from __future__ import annotations

import os

import numpy as np

from ppdet.plotting import Series, grid, line_chart, write_png

__all__ = ["write_pr_curves"]


def write_pr_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    output_dir: str,
    per_image: int = 20,
    title_suffix: str = "",
) -> list[str]:
    """Draw each class's curve (recall [D], precision [D]) as its own small chart, ``per_image``
    charts to a picture, into ``<output_dir>/pr_curves_<k>.png``; returns the paths written."""
    names = list(curves)
    paths = []
    for k, start in enumerate(range(0, len(names), per_image)):
        charts = []
        for name in names[start : start + per_image]:
            recall, precision = curves[name]
            charts.append(
                line_chart(
                    [Series(name, recall, precision)],
                    f"{name}{title_suffix}",
                    "recall",
                    "precision",
                    size=(300, 400),
                    x_range=(0.0, 1.0),
                    y_range=(0.0, 1.0),
                )
            )
        path = os.path.join(output_dir, f"pr_curves_{k}.png")
        paths.append(write_png(path, grid(charts, cols=min(5, len(charts)))))
    return paths
