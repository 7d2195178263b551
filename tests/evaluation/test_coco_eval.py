"""COCOEvaluator on a hand-made two-image ground truth with category ids 3 and 7.

COCO AP averages precision at 101 recall thresholds 0, 0.01, ..., 1 after making precision
non-increasing; with exact boxes (IoU 1) every IoU threshold gives the same number, so
AP == AP50 == AP75. All boxes are 30-50 px wide: "medium" (32^2 <= area < 96^2).
"""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from ppdet.evaluation import COCOEvaluator, VOCEvaluator, build_evaluator

# (image id, class id, x1, y1, x2, y2); class 0 = "cat" (category 3), 1 = "dog" (category 7)
GT = [
    (1, 0, 10, 10, 50, 50),
    (1, 1, 60, 60, 95, 95),
    (2, 0, 20, 30, 70, 80),
    (2, 1, 5, 5, 45, 45),
    (2, 1, 50, 50, 90, 90),
]
CATIDS = {0: 3, 1: 7}


@pytest.fixture
def dataset(tmp_path):
    coco = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "height": 100, "width": 100} for i in (1, 2)],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {
                "id": k + 1,
                "image_id": im,
                "category_id": CATIDS[c],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
            for k, (im, c, x1, y1, x2, y2) in enumerate(GT)
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    records = [
        {"im_file": f"{i}.jpg", "im_id": np.array([i], np.int64), "h": 100, "w": 100}
        for i in (1, 2)
    ]
    return SimpleNamespace(
        anno_path=str(path), clsid2catid=CATIDS, label_list=["cat", "dog"], records=records
    )


def run(evaluator, dets_by_image):
    """Feed {im_id: [(cls, score, x1, y1, x2, y2), ...]} as one batch and accumulate."""
    ids = sorted(dets_by_image)
    rows = [row for i in ids for row in dets_by_image[i]]
    bbox = np.array(rows, np.float32).reshape(-1, 6)
    evaluator.update(np.array(ids, np.int64), bbox, np.array([len(dets_by_image[i]) for i in ids]))
    return evaluator.accumulate()


def perfect(score=0.9):
    out = {1: [], 2: []}
    for im, c, *box in GT:
        out[im].append((c, score, *box))
    return out


def test_perfect_predictions_give_ap_one(dataset, capsys):
    m = run(COCOEvaluator(dataset), perfect())
    for key in ("AP", "AP50", "AP75", "APm", "AR10", "AR100", "ARm"):
        assert m[key] == pytest.approx(1.0), key
    # AR1 keeps one box per image and category: image 2's two dogs -> dog recall 2/3
    assert m["AR1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["APs"] == -1 and m["APl"] == -1  # pycocotools: no gt in that area range
    assert "Average Precision" in capsys.readouterr().out  # the 12 standard lines


def test_one_missed_object(dataset):
    dets = perfect()
    dets[2] = dets[2][:-1]  # drop the second dog of image 2
    m = run(COCOEvaluator(dataset), dets)
    # dog: recall reaches 2/3 at precision 1 -> thresholds 0..0.66 = 67 of 101 points
    expected = (1.0 + 67 / 101) / 2
    assert m["AP"] == pytest.approx(expected)
    assert m["AP50"] == pytest.approx(expected)
    assert m["AP75"] == pytest.approx(expected)
    assert m["AR100"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_one_false_positive_ranked_first(dataset):
    dets = perfect()
    dets[1].append((0, 0.95, 60, 10, 95, 40))  # a "cat" where there is none, top score
    m = run(COCOEvaluator(dataset), dets)
    # cat: FP, TP, TP -> precision 0, 1/2, 2/3; its envelope is 2/3 at every recall
    assert m["AP"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert m["AR100"] == pytest.approx(1.0)


def test_false_positive_ranked_last_costs_nothing(dataset):
    dets = perfect()
    dets[1].append((0, 0.1, 60, 10, 95, 40))
    assert run(COCOEvaluator(dataset), dets)["AP"] == pytest.approx(1.0)


def test_zero_detections_give_zeros(dataset, capsys):
    ev = COCOEvaluator(dataset)
    ev.update(np.array([1, 2]), np.zeros((0, 6), np.float32), np.array([0, 0]))
    m = ev.accumulate()
    assert set(m) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"}
    assert all(v == 0.0 for v in m.values())
    assert "no detections" in capsys.readouterr().out


def test_bbox_json_and_classwise(dataset, tmp_path):
    out_dir = tmp_path / "out"
    ev = COCOEvaluator(dataset, output_dir=str(out_dir), classwise=True)
    m = run(ev, {1: [(1, 0.5, 60, 60, 95, 95)], 2: []})
    results = json.loads((out_dir / "bbox.json").read_text())
    assert results == [{"image_id": 1, "category_id": 7, "bbox": [60, 60, 35, 35], "score": 0.5}]
    assert [f for f in os.listdir(out_dir) if f != "bbox.json"] == []  # no temp file left
    assert m["AP/cat"] == 0.0
    assert m["AP/dog"] == pytest.approx(34 / 101)  # recall 1/3 at precision 1


def test_reset_and_padding_rows(dataset):
    ev = COCOEvaluator(dataset)
    ev.update(np.array([1]), np.array([[0, 0.9, 10, 10, 50, 50]], np.float32), np.array([1]))
    ev.reset()
    assert ev.results == []
    ev.update(np.array([[1]]), np.array([[-1, 0, 0, 0, 0, 0]], np.float32), np.array([1]))
    assert ev.results == []  # class -1 rows are padding


def test_update_rejects_inconsistent_batch(dataset):
    ev = COCOEvaluator(dataset)
    with pytest.raises(ValueError, match="bbox_num"):
        ev.update(np.array([1, 2]), np.zeros((3, 6), np.float32), np.array([1, 1]))


def test_build_evaluator(dataset):
    voc_dataset = SimpleNamespace(records=[], label_list=["cat"])
    assert isinstance(build_evaluator("COCO", dataset), COCOEvaluator)
    assert isinstance(build_evaluator("voc", voc_dataset, map_type="area"), VOCEvaluator)
    assert build_evaluator("COCO", dataset).primary_metric == "AP"
    with pytest.raises(ValueError, match="accepted: COCO, VOC"):
        build_evaluator("WiderFace", dataset)


def test_registered_as_evaluators():
    from ppdet.config.registry import all_names

    assert {"COCOEvaluator", "VOCEvaluator"} <= set(all_names("evaluator"))


def test_map_type_is_for_voc_only(dataset):
    ev = build_evaluator("COCO", dataset, map_type="11point")  # a VOC key in a COCO config
    assert isinstance(ev, COCOEvaluator)
