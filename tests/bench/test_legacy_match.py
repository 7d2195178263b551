"""bench/legacy_match.py (bench/compare_legacy.py's matching): detections, v0.1 input mapping
and output conventions on small hand-made arrays (the real comparison needs the v0.1 oracle and
runs in bench/ only)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.legacy_match import (
    MatchResult,
    box_iou,
    compare_rois,
    match,
    network_input,
    reference_detections,
)


def test_box_iou_hand_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 5]], np.float32)  # second box has no area
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1.0], [0.0, 0.0]])


def det(label, score, x1, y1, x2, y2):
    return [label, score, x1, y1, x2, y2]


def test_match_needs_label_box_and_score():
    ref = np.array(
        [
            det(1, 0.90, 0, 0, 100, 100),
            det(2, 0.50, 10, 10, 50, 50),
            det(3, 0.30, 0, 0, 100, 100),
            det(4, 0.20, 0, 0, 100, 100),
        ]
    )
    ours = np.array(
        [
            det(1, 0.9004, 0.2, 0, 100, 100),  # IoU 0.998, score within 1e-3: matched
            det(2, 0.5020, 10, 10, 50, 50),  # same box, score off by 2e-3
            det(3, 0.30, 0, 0, 100, 98),  # same score, IoU 0.98
            det(5, 0.20, 0, 0, 100, 100),  # another label
        ]
    )
    assert match(ref, ours) == MatchResult(4, 4, matched=1, box_only=1, score_only=1)
    assert match(ref, ours, iou_min=0.97).matched == 2
    assert match(ref, ours, score_tol=3e-3).matched == 2


def test_match_is_one_to_one_and_takes_the_best_box():
    ref = np.array([det(0, 0.8, 0, 0, 10, 10), det(0, 0.8, 0, 0, 10, 10)])
    ours = np.array([det(0, 0.8, 0, 0, 10, 10)])
    assert match(ref, ours).matched == 1
    ref = np.array([det(0, 0.8, 0, 0, 100, 100)])
    ours = np.array([det(0, 0.8, 0, 0, 100, 99.5), det(0, 0.8, 0, 0, 100, 100)])
    assert match(ref, ours).matched == 1
    assert match(ref[:0], ours) == MatchResult(0, 2, 0)
    assert match(ref, ours[:0]) == MatchResult(1, 0, 0)
    assert match(ref, ours) + match(ref, ours[:0]) == MatchResult(2, 2, 1)


def test_network_input_maps_v01_feeds():
    image = np.zeros((1, 3, 608, 608), np.float32)
    yolo = {"p/image": image, "p/im_size": np.array([[300, 451]], np.int32)}
    out = network_input("yolov3", yolo, "p")
    np.testing.assert_allclose(out["im_shape"], [[608, 608]])
    np.testing.assert_allclose(out["scale_factor"], [[608 / 300, 608 / 451]], rtol=1e-6)
    # R-CNN: padded input, one scale; im_shape = the unpadded resized size
    rcnn = {
        "p/image": np.zeros((1, 3, 800, 1216), np.float32),
        "p/im_info": np.array([[800, 1216, 800 / 300]], np.float32),
        "p/im_shape": np.array([[300, 451, 1]], np.float32),
    }
    out = network_input("rcnn", rcnn, "p")
    np.testing.assert_allclose(out["im_shape"], [[800, 1203]])
    np.testing.assert_allclose(out["scale_factor"], [[800 / 300] * 2], rtol=1e-6)


@pytest.mark.parametrize(
    "family, expected",
    [
        ("yolov3", [[3, 0.5, 0.1, 0.2, 0.3, 0.4]]),  # labels 0-based already, pixels
        ("rcnn", [[2, 0.5, 0.1, 0.2, 0.3, 0.4]]),  # background 0 removed
        ("ssd", [[2, 0.5, 20, 20, 60, 40]]),  # normalised boxes times (w0, h0)
    ],
)
def test_reference_detections_in_our_convention(family, expected):
    z = {
        "p/bbox": np.array([[3, 0.5, 0.1, 0.2, 0.3, 0.4]], np.float32),
        "p/im_shape": np.array([[100, 200]], np.float32),
        "p/im_size": np.array([[100, 200]], np.int32),
    }
    np.testing.assert_allclose(reference_detections(family, z, "p"), expected, rtol=1e-6)
    z["p/bbox"] = np.array([[-1]], np.float32)  # fluid's "nothing detected"
    assert reference_detections(family, z, "p").shape == (0, 6)


def test_compare_rois_is_order_free():
    ref = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    assert compare_rois(ref, ref[::-1].copy()).startswith("2/2 rows, 100.0% IoU>=0.99, max|d| 0 ")
    assert "50.0%" in compare_rois(ref, np.array([[0, 0, 10, 10]], np.float32))
