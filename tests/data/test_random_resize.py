"""RandomResize: one size drawn per sample (PaddleDetection's per-sample multi-scale resize)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from ppdet.data.transforms import RandomResize

from .test_transforms import assert_boxes_on_colours, sample_with_boxes

SIZES = [[640, 1333], [672, 1333], [800, 1333]]


def test_each_sample_draws_its_own_size_uniformly():
    # a 100 x 150 image with keep_ratio: short side 100 -> s, long side 1.5 s (< 1333)
    op = RandomResize([[16, 1333], [20, 1333], [24, 1333]], keep_ratio=True, interp=1)
    np.random.seed(0)
    counts = collections.Counter()
    for _ in range(3000):
        out = op(sample_with_boxes(100, 150, [[20, 10, 60, 50]]))
        h, w = out["image"].shape[:2]
        assert w == 1.5 * h
        counts[h] += 1
    assert set(counts) == {16, 20, 24}
    for n in counts.values():  # 1000 expected each; binomial sd ~26
        assert abs(n - 1000) < 150


def test_sizes_differ_within_a_batch():
    # unlike BatchRandomResize, samples of one batch do not share the draw
    op = RandomResize(SIZES, keep_ratio=True)
    np.random.seed(1)
    heights = {op(sample_with_boxes())["image"].shape[0] for _ in range(8)}
    assert len(heights) > 1


def test_keep_ratio_hand_computed_boxes_follow():
    # 100 x 200 to [50, 1333]: scale 0.5 -> 50 x 100; boxes halve; scale_factor 0.5
    op = RandomResize([[50, 1333]], keep_ratio=True, interp=1)
    out = op(sample_with_boxes())
    assert out["image"].shape == (50, 100, 3)
    np.testing.assert_allclose(out["gt_bbox"], np.array([[10, 5, 30, 25], [60, 20, 95, 45]]))
    np.testing.assert_allclose(out["im_shape"], [50, 100])
    np.testing.assert_allclose(out["scale_factor"], [0.5, 0.5])
    # the long-side limit wins: 100 x 200 to [150, 250]: scale min(1.5, 1.25) = 1.25
    out = RandomResize([[150, 250]], keep_ratio=True)(sample_with_boxes())
    assert out["image"].shape == (125, 250, 3)
    assert_boxes_on_colours(out)


def test_stretch_and_fixed_size():
    out = RandomResize([[60, 80]], keep_ratio=False)(sample_with_boxes())
    assert out["image"].shape == (60, 80, 3)
    np.testing.assert_allclose(out["scale_factor"], [0.6, 0.4])
    np.testing.assert_allclose(out["gt_bbox"][0], [8, 6, 24, 30])
    out = RandomResize([60, 80], keep_ratio=False, random_size=False)(sample_with_boxes())
    assert out["image"].shape == (60, 80, 3)  # random_size off: the one size, as given


def test_random_range_draws_short_side_inclusive():
    # PaddleDetection 2.6: short side uniform in [60, 64], long side limit max(400, 400 + 1)
    op = RandomResize([[60, 400], [64, 400]], keep_ratio=True, random_range=True)
    assert op.target_size == [[60, 400], [64, 400]]
    np.random.seed(2)
    sizes = {tuple(op.draw_size()) for _ in range(200)}
    assert sizes == {(s, 401) for s in range(60, 65)}
    heights = {op(sample_with_boxes())["image"].shape[0] for _ in range(100)}
    assert heights == set(range(60, 65))


def test_random_interp_draws_among_five():
    op = RandomResize([[16, 1333], [24, 1333]], random_interp=True)
    np.random.seed(3)
    seen = collections.Counter()
    import ppdet.data.transforms.random_resize as rr

    original = rr.resize_sample

    def spy(sample, h, w, interp):
        seen[interp] += 1
        return original(sample, h, w, interp)

    rr.resize_sample = spy
    try:
        for _ in range(100):
            op(sample_with_boxes())
    finally:
        rr.resize_sample = original
    assert set(seen) == set(rr.INTERPS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_size": 640}, "must be a list of sizes"),
        ({"target_size": []}, "at least one size"),
        ({"target_size": [[1, 2]], "random_range": True}, "random_range"),
        ({"target_size": [[1, 2, 3]]}, "target_size must be an int or [h, w]"),
    ],
)
def test_bad_target_size(kwargs, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        RandomResize(**kwargs)
