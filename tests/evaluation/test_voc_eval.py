"""VOCEvaluator on hand-computed precision/recall curves."""

from types import SimpleNamespace

import numpy as np
import pytest

from ppdet.evaluation.voc_eval import VOCEvaluator, ap_11point, ap_area


def record(im_id, boxes, classes, difficult=None):
    n = len(boxes)
    return {
        "im_file": f"{im_id}.jpg",
        "im_id": np.array([im_id], np.int64),
        "h": 100,
        "w": 100,
        "gt_bbox": np.array(boxes, np.float32).reshape(-1, 4),
        "gt_class": np.array(classes, np.int32).reshape(-1, 1),
        "is_crowd": np.zeros((n, 1), np.int32),
        "difficult": np.array(difficult or [0] * n, np.int32).reshape(-1, 1),
    }


# class 0 "car": A in image 1, B and C in image 2 (3 gts); image 3 holds a difficult car D.
RECORDS = [
    record(1, [[0, 0, 10, 10]], [0]),
    record(2, [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]),
    record(3, [[0, 0, 10, 10]], [0], difficult=[1]),
]
# Score order: TP (A), FP (empty spot), TP (B), FP (B again: duplicate)
DETS = {
    1: [(0, 0.9, 0, 0, 10, 10), (0, 0.8, 50, 50, 60, 60)],
    2: [(0, 0.7, 0, 0, 10, 10), (0, 0.6, 0, 0, 10, 10)],
}


def evaluate(records, dets_by_image, **kw):
    ev = VOCEvaluator(SimpleNamespace(records=records, label_list=["car", "bus"]), **kw)
    for im_id, rows in dets_by_image.items():
        bbox = np.array(rows, np.float32).reshape(-1, 6)
        ev.update(np.array([im_id]), bbox, np.array([len(rows)]))
    return ev.accumulate()


def test_hand_computed_curve():
    # recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2
    # 11-point: r in 0..0.3 -> 1 (4 points), r in 0.4..0.6 -> 2/3 (3 points), rest 0
    # area: 1/3 * 1 + 1/3 * 2/3 + 1/3 * 0 = 5/9
    m = evaluate(RECORDS, DETS)
    assert m["mAP_11point"] == pytest.approx(6 / 11)
    assert m["mAP_area"] == pytest.approx(5 / 9)
    assert m["mAP"] == pytest.approx(6 / 11)
    assert m["AP/car"] == pytest.approx(6 / 11)
    assert "AP/bus" not in m  # no ground truth: not part of the mean
    assert evaluate(RECORDS, DETS, map_type="area")["mAP"] == pytest.approx(5 / 9)


def test_difficult_hit_is_neither_tp_nor_fp():
    dets = dict(DETS)
    dets[3] = [(0, 0.95, 0, 0, 10, 10)]  # top-scoring hit on the difficult car D
    m = evaluate(RECORDS, dets)
    assert m["mAP_11point"] == pytest.approx(6 / 11)
    assert m["mAP_area"] == pytest.approx(5 / 9)


def test_difficult_counted_when_not_ignored():
    dets = dict(DETS)
    dets[3] = [(0, 0.95, 0, 0, 10, 10)]
    # 4 gts; TP, TP, FP, TP, FP -> recall .25 .5 .5 .75 .75, precision 1 1 2/3 3/4 3/5
    # 11-point: r in 0..0.5 -> 1 (6 points), r in 0.6, 0.7 -> 3/4, rest 0 -> 7.5/11
    # area: .25 * 1 + .25 * 1 + .25 * 3/4 = 11/16
    m = evaluate(RECORDS, dets, ignore_difficult=False)
    assert m["mAP_11point"] == pytest.approx(7.5 / 11)
    assert m["mAP_area"] == pytest.approx(11 / 16)


def test_class_with_only_difficult_gt_is_skipped():
    records = [record(1, [[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1], difficult=[0, 1])]
    m = evaluate(records, {1: [(0, 0.9, 0, 0, 10, 10)]})
    assert m["mAP"] == pytest.approx(1.0)
    assert set(k for k in m if k.startswith("AP/")) == {"AP/car"}


def test_mean_over_classes_and_wrong_class():
    records = [record(1, [[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1])]
    # the car is found; the bus box is predicted as a car (FP for car, bus missed)
    m = evaluate(records, {1: [(0, 0.9, 0, 0, 10, 10), (0, 0.5, 20, 20, 40, 40)]})
    assert m["AP/car"] == pytest.approx(1.0)
    assert m["AP/bus"] == 0.0
    assert m["mAP"] == pytest.approx(0.5)


def test_iou_threshold_is_strict():
    records = [record(1, [[0, 0, 10, 20]], [0])]
    half = {1: [(0, 0.9, 0, 0, 10, 10)]}  # IoU exactly 0.5
    assert evaluate(records, half)["mAP"] == 0.0
    assert evaluate(records, half, iou_thresh=0.49)["mAP"] == pytest.approx(1.0)


def test_zero_detections(capsys):
    m = evaluate(RECORDS, {1: []})
    assert m["mAP"] == 0.0 and m["mAP_11point"] == 0.0 and m["mAP_area"] == 0.0
    assert "no detections" in capsys.readouterr().out


def test_reset_and_bad_inputs():
    ev = VOCEvaluator(SimpleNamespace(records=RECORDS, label_list=["car"]))
    ev.update(np.array([1]), np.array([[0, 0.9, 0, 0, 10, 10]], np.float32), np.array([1]))
    ev.reset()
    assert ev.accumulate()["mAP"] == 0.0
    with pytest.raises(ValueError, match="not in the dataset"):
        ev.update(np.array([99]), np.zeros((0, 6), np.float32), np.array([0]))
    with pytest.raises(ValueError, match="map_type"):
        VOCEvaluator(SimpleNamespace(records=[], label_list=[]), map_type="12point")


def test_ap_functions_direct():
    rec = np.array([0.5, 1.0])
    prec = np.array([1.0, 0.5])
    assert ap_area(rec, prec) == pytest.approx(0.75)
    assert ap_11point(rec, prec) == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)
    assert ap_area(np.array([]), np.array([])) == 0.0


def test_output_dir_gets_metrics_json(tmp_path):
    import json

    m = evaluate(RECORDS, DETS, output_dir=str(tmp_path))
    assert json.loads((tmp_path / "voc_metrics.json").read_text()) == pytest.approx(m)
