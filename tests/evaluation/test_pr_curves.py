"""Class-wise evaluation keeps each class's precision-recall curve; the curves are drawn."""

import cv2
import numpy as np
import pytest

from ppdet.evaluation import COCOEvaluator
from ppdet.evaluation.pr_curves import write_pr_curves
from tests.evaluation.test_coco_eval import dataset, run  # noqa: F401 (fixture)
from tests.evaluation.test_voc_eval import DETS, RECORDS, evaluate


def test_coco_curve_of_a_class_found_once(dataset):  # noqa: F811
    ev = COCOEvaluator(dataset, classwise=True)
    run(ev, {1: [(1, 0.5, 60, 60, 95, 95)], 2: []})
    assert sorted(ev.pr_curves) == ["cat", "dog"]
    recall, precision = ev.pr_curves["dog"]
    assert recall.shape == precision.shape == (101,)
    # one of three dogs found with precision 1: recall thresholds 0..0.33 have precision 1
    np.testing.assert_allclose(precision[:34], 1.0)
    np.testing.assert_allclose(precision[34:], 0.0)
    np.testing.assert_allclose(ev.pr_curves["cat"][1], 0.0)  # cats have ground truth, no hit


def test_no_curves_without_classwise(dataset):  # noqa: F811
    ev = COCOEvaluator(dataset)
    run(ev, {1: [(1, 0.5, 60, 60, 95, 95)], 2: []})
    assert ev.pr_curves == {}


def test_voc_curve_is_the_hand_computed_one(capsys):
    from types import SimpleNamespace

    from ppdet.evaluation.voc_eval import VOCEvaluator

    ev = VOCEvaluator(SimpleNamespace(records=RECORDS, label_list=["car", "bus"]), classwise=True)
    for im_id, rows in DETS.items():
        ev.update(np.array([im_id]), np.array(rows, np.float32), np.array([len(rows)]))
    ev.accumulate()
    recall, precision = ev.pr_curves["car"]
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 1 / 2])
    assert "Per-class AP (11point):" in capsys.readouterr().out
    assert evaluate(RECORDS, DETS)["AP/car"] == pytest.approx(6 / 11)  # unchanged numbers


def test_pictures_hold_twenty_classes_each(tmp_path):
    curves = {f"c{i}": (np.linspace(0, 1, 11), np.linspace(1, 0, 11)) for i in range(23)}
    paths = write_pr_curves(curves, str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["pr_curves_0.png", "pr_curves_1.png"]
    assert cv2.imread(paths[0]).shape == (4 * 300, 5 * 400, 3)  # 20 charts, 5 per row
    assert cv2.imread(paths[1]).shape == (300, 3 * 400, 3)  # the last 3
