"""ppdet.visualize: drawing boxes and the detections JSON writer."""

import os

import numpy as np

from ppdet.visualize import (
    batch_to_json,
    class_color,
    detections_to_json,
    draw_detections,
    read_detections_json,
    write_detections_json,
)


def test_draw_changes_box_edges_only():
    image = np.zeros((64, 80, 3), np.uint8)
    bbox = np.array([[1, 0.9, 10, 30, 50, 60]], np.float32)
    out = draw_detections(image, bbox, ["cat", "dog"], threshold=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not image.any()  # input untouched
    assert out[45, 10].any() and out[45, 50].any()  # left and right edges
    assert out[60, 30].any()  # bottom edge
    assert not out[45, 30].any()  # box interior
    assert out[20:30, 10:40].any()  # the label above the box


def test_threshold_and_padding_rows_draw_nothing():
    image = np.full((32, 32, 3), 7, np.uint8)
    bbox = np.array([[0, 0.2, 2, 2, 20, 20], [-1, 0.9, 0, 0, 0, 0]], np.float32)
    assert np.array_equal(draw_detections(image, bbox, ["a"], threshold=0.3), image)
    assert np.array_equal(draw_detections(image, np.zeros((0, 6)), ["a"]), image)


def test_box_at_the_border_and_unknown_class():
    image = np.zeros((40, 40, 3), np.uint8)
    out = draw_detections(image, np.array([[9, 0.8, -5, -5, 60, 60]]), ["a"], threshold=0.5)
    assert out.shape == image.shape and out.any()


def test_class_colours_are_stable_and_distinct():
    assert class_color(3) == class_color(3)
    assert len({class_color(c) for c in range(20)}) == 20


def test_json_entry_and_round_trip(tmp_path):
    bbox = np.array(
        [[0, 0.25, 1, 2, 3, 4], [1, 0.75, 10.5, 20, 30, 40.25], [1, 0.01, 0, 0, 1, 1]],
        np.float32,
    )
    entry = detections_to_json("a.jpg", 7, bbox, ["cat", "dog"], threshold=0.1)
    assert entry == {
        "image": "a.jpg",
        "im_id": 7,
        "detections": [
            {"class_id": 1, "category": "dog", "score": 0.75, "bbox": [10.5, 20, 30, 40.25]},
            {"class_id": 0, "category": "cat", "score": 0.25, "bbox": [1, 2, 3, 4]},
        ],
    }
    entries = batch_to_json(
        ["a.jpg", "b.jpg"], np.array([[7], [8]]), bbox, np.array([3, 0]), ["cat", "dog"], 0.1
    )
    assert entries[0] == entry and entries[1]["detections"] == []
    path = tmp_path / "sub" / "result.json"
    write_detections_json(str(path), entries)
    write_detections_json(str(path), entries)  # overwrite in place
    assert read_detections_json(str(path)) == entries
    assert os.listdir(path.parent) == ["result.json"]  # no temp file left


def test_writer_converts_predictor_results(tmp_path):
    """tools/infer.py passes the Predictor's raw results and the label list."""
    results = [
        {"im_file": "x/a.jpg", "im_id": 0, "bbox": np.array([[1, 0.5, 0, 0, 4, 4]], np.float32)},
        {"im_file": "x/b.jpg", "im_id": 1, "bbox": np.zeros((0, 6), np.float32)},
    ]
    path = str(tmp_path / "bbox.json")
    write_detections_json(path, results, ["cat", "dog"])
    assert read_detections_json(path) == [
        {
            "image": "x/a.jpg",
            "im_id": 0,
            "detections": [{"class_id": 1, "category": "dog", "score": 0.5, "bbox": [0, 0, 4, 4]}],
        },
        {"image": "x/b.jpg", "im_id": 1, "detections": []},
    ]
