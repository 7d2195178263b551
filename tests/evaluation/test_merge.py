"""Evaluators split over shards and merged (distributed evaluation) give the numbers of one
evaluator that saw every image, in any order of arrival."""

from types import SimpleNamespace

import numpy as np
import pytest

from ppdet.evaluation import COCOEvaluator, VOCEvaluator
from ppdet.evaluation.distributed import merge_shards, share

from .test_coco_eval import dataset  # noqa: F401  (fixture)
from .test_voc_eval import record

# VOC: three cars; equal scores across images make the matching order matter.
VOC_RECORDS = [
    record(1, [[0, 0, 10, 10]], [0]),
    record(2, [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]),
    record(3, [[40, 40, 50, 50]], [0]),
]
VOC_DETS = {
    1: [(0, 0.8, 50, 50, 60, 60), (0, 0.5, 0, 0, 10, 10)],  # FP then TP
    2: [(0, 0.8, 0, 0, 10, 10), (0, 0.5, 70, 70, 80, 80)],  # TP then FP
    3: [(0, 0.8, 40, 40, 50, 50), (0, 0.3, 0, 0, 5, 5)],
}
COCO_DETS = {
    1: [(0, 0.9, 10, 10, 50, 50), (1, 0.9, 60, 62, 95, 95), (1, 0.4, 0, 0, 20, 20)],
    2: [(0, 0.7, 20, 30, 70, 80), (1, 0.9, 5, 5, 45, 45), (1, 0.7, 50, 55, 90, 90)],
}


def feed(evaluator, dets, ids):
    for im_id in ids:
        rows = np.array(dets[im_id], np.float32).reshape(-1, 6)
        evaluator.update(np.array([im_id]), rows, np.array([len(rows)]))
    return evaluator


def voc():
    return VOCEvaluator(SimpleNamespace(records=VOC_RECORDS, label_list=["car"]))


def test_voc_shards_merged_equal_one_pass_in_dataset_order():
    whole = feed(voc(), VOC_DETS, [1, 2, 3]).accumulate()
    backwards = feed(voc(), VOC_DETS, [3, 2, 1]).accumulate()  # ties matched in dataset order
    shard_a, shard_b = feed(voc(), VOC_DETS, [2]), feed(voc(), VOC_DETS, [3, 1])
    merged = voc()
    merged.merge([shard_b.state(), shard_a.state()])
    assert merged.accumulate() == whole == backwards
    assert 0 < whole["mAP"] < 1


def test_coco_shards_merged_equal_one_pass(dataset, tmp_path):  # noqa: F811
    whole = feed(COCOEvaluator(dataset, output_dir=str(tmp_path / "one")), COCO_DETS, [1, 2])
    expected = whole.accumulate()
    shards = [feed(COCOEvaluator(dataset), COCO_DETS, [i]) for i in (2, 1)]
    merged = COCOEvaluator(dataset, output_dir=str(tmp_path / "merged"))
    merged.merge([s.state() for s in shards])
    assert merged.accumulate() == expected
    assert 0 < expected["AP"] < 1
    one = (tmp_path / "one" / "bbox.json").read_text()
    assert (tmp_path / "merged" / "bbox.json").read_text() == one  # same detections, same order


def test_single_process_gather_is_a_no_op():
    ev = feed(voc(), VOC_DETS, [1])
    assert merge_shards(ev) is True and ev.num_dets == 2
    assert share({"mAP": 0.5}) == {"mAP": 0.5}


@pytest.mark.parametrize("make", [voc])
def test_state_is_plain_data(make):
    import pickle

    state = feed(make(), VOC_DETS, [1, 2]).state()
    assert pickle.loads(pickle.dumps(state))["num_dets"] == 4
