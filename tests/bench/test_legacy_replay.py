"""bench/legacy_replay.py: the fluid-era recomputations against numbers fluid 1.8.5 itself gave
(anchor_generator) and hand-made cases (retinanet_detection_output, v0.1 mask paste)."""

from __future__ import annotations

import numpy as np

from bench.legacy_replay import fluid_anchors, paste_mask_v01, retinanet_detection_output


def test_fluid_anchors_equal_fluid_anchor_generator():
    # fluid.layers.anchor_generator(2x2 map, sizes [256], ratios [0.5, 1, 2], stride 32) at
    # (y, x) = (1, 1): base height round(45 * 0.5) = 23 with C rounding (numpy's gives 22)
    got = fluid_anchors(2, 2, [256.0], [0.5, 1.0, 2.0], 32.0)[1, 1]
    np.testing.assert_array_equal(
        got, [[-132, -44, 227, 139], [-80, -80, 175, 175], [-44, -136, 139, 231]]
    )
    # ratio-major order: (ratio 1: sizes 64, 80.6), (ratio 2: ...), (ratio 0.5: ...) at (0, 1)
    got = fluid_anchors(2, 2, [64.0, 80.63494], [1.0, 2.0, 0.5], 16.0)[0, 1]
    expected = [
        [-8, -24, 55, 39],
        [-16.31747, -32.31747, 63.31747, 47.31747],
        [2, -36, 45, 51],
        [-3.718262, -47.436523, 50.71826, 62.436523],
        [-22, -16, 69, 31],
        [-33.956364, -22.238102, 80.95636, 37.238102],
    ]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_retinanet_detection_output_by_hand():
    """Two levels, 2 classes; +1 decoding, /scale, clip to the padded size; +1 NMS."""
    anchors = [
        np.array([[0, 0, 9, 9], [1, 0, 10, 9]], np.float32),
        np.array([[0, 0, 19, 19]], np.float32),
    ]
    deltas = [np.zeros((2, 4), np.float32), np.array([[0, 0, np.log(2), 0]], np.float32)]
    scores = [
        np.array([[0.9, 0.01], [0.8, 0.3]], np.float32),  # level 0: threshold 0.05
        np.array([[0.02, 0.01]], np.float32),  # last level: threshold 0
    ]
    out = retinanet_detection_output(scores, deltas, anchors, np.array([20, 20, 2.0]), 0.05, 0.5)
    # class 0: anchors 0 and 1 overlap with +1 IoU 90/110 > 0.5 -> only the 0.9 one; level-1
    # box (w 40 around centre 10): x -10..29 -> /2 -> -5..14.5 -> clipped to 0..9 (20/2 - 1)
    expected = [
        [0, 0.9, 0, 0, 4.5, 4.5],
        [1, 0.3, 0.5, 0, 5, 4.5],
        [0, 0.02, 0, 0, 9, 9],
        [1, 0.01, 0, 0, 9, 9],
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_paste_mask_v01_expands_the_box_and_pads_the_mask():
    mask = np.ones((2, 2), np.float32)  # with its zero border: 4 x 4, the box grows by 4 / 2
    out = paste_mask_v01(mask, np.array([4.0, 4.0, 8.0, 8.0]), 12, 12)
    # expanded box 2..10 (w 9 with +1): the resized 4x4 mask is > 0.5 in its middle
    assert out.dtype == np.uint8 and out.shape == (12, 12)
    assert out[6, 6] == 1 and out[0, 0] == 0 and out[11, 11] == 0
    rows = np.nonzero(out.any(1))[0]
    assert rows.min() >= 2 and rows.max() <= 10
