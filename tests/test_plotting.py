"""OpenCV line charts: tick choice, where points land, tiling, atomic PNG writes."""

import math

import cv2
import numpy as np
import pytest

from ppdet.plotting import COLOURS, Series, grid, line_chart, log_ticks, nice_ticks, write_png


@pytest.mark.parametrize(
    "lo, hi, expected",
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.0, 90000.0, [0.0, 20000.0, 40000.0, 60000.0, 80000.0]),
        (0.13, 0.47, [0.2, 0.3, 0.4]),  # step 0.1: the first of 1/2/5 x 10^k >= 0.34 / 5
        (3.0, 3.0, [3.0]),
    ],
)
def test_nice_ticks(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_log_ticks_are_round_values():
    values = [round(10**t, 6) for t in log_ticks(math.log10(0.15), math.log10(4.0))]
    assert values == [0.2, 0.5, 1.0, 2.0]
    values = [round(10**t, 6) for t in log_ticks(-4.0, 3.0)]  # too many 1/2/5: decades only
    assert values == [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


def test_a_line_is_drawn_where_its_points_are():
    img = line_chart(
        [Series("a", [0, 1], [0, 1])], "t", size=(200, 300), x_range=(0, 1), y_range=(0, 1)
    )
    assert img.shape == (200, 300, 3) and img.dtype == np.uint8
    # plot area: x in [70, 280], y in [40, 150] (margins 70/20/40/50); the diagonal's middle
    mid = img[95, 175]
    assert np.abs(mid.astype(int) - np.array(COLOURS[0])).sum() < 60
    # the top-left corner of the plot area is not on the line
    assert tuple(img[45, 75]) == (255, 255, 255)


def test_log_scale_drops_non_positive_values_and_nan():
    s = Series("loss", [0, 1, 2, 3], [1.0, 0.0, np.nan, 0.01])
    img = line_chart([s], "losses", log_y=True)
    assert img.shape == (480, 640, 3)


def test_series_needs_matching_lengths():
    with pytest.raises(ValueError, match="x has 2 points, y has 3"):
        Series("bad", [0, 1], [0, 1, 2])


def test_grid_and_png_round_trip(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    b = np.full((10, 20, 3), 7, np.uint8)
    g = grid([a, b, a], cols=2)
    assert g.shape == (20, 40, 3)
    assert (g[10:, 20:] == 255).all()  # the empty cell stays white
    path = write_png(str(tmp_path / "sub" / "g.png"), g)
    np.testing.assert_array_equal(cv2.imread(path), g)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["g.png"]  # no temp file left
