"""faster-coco-eval, when installed, is picked automatically and gives pycocotools' numbers."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from ppdet.evaluation.coco_backend import coco_backend
from ppdet.evaluation.coco_eval import COCOEvaluator

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from coco_eval_time import synthetic_set  # noqa: E402

HAVE_FAST = importlib.util.find_spec("faster_coco_eval") is not None


def test_unknown_backend_is_one_clear_error():
    with pytest.raises(ValueError, match="'cocoapi' is unknown; use one of pycocotools"):
        coco_backend("cocoapi")


def test_environment_forces_the_reference(monkeypatch):
    monkeypatch.setenv("PPDET_COCO_EVAL", "pycocotools")
    assert coco_backend().name == "pycocotools"
    monkeypatch.delenv("PPDET_COCO_EVAL")
    assert coco_backend().name == ("faster_coco_eval" if HAVE_FAST else "pycocotools")


@pytest.mark.skipif(not HAVE_FAST, reason="faster-coco-eval is not installed")
def test_both_backends_give_the_same_stats_and_curves(tmp_path):
    gt, results = synthetic_set(40, 30, seed=3)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    dataset = type("D", (), {})()
    dataset.anno_path = str(path)
    dataset.clsid2catid = {k: k + 1 for k in range(80)}
    dataset.label_list = [f"c{k + 1}" for k in range(80)]
    dataset.records = [{"im_id": np.array([i])} for i in range(1, 41)]
    by_image = {}
    for r in results:
        x, y, w, h = r["bbox"]
        by_image.setdefault(r["image_id"], []).append(
            (r["category_id"] - 1, r["score"], x, y, x + w, y + h)
        )
    out = {}
    for name in ("pycocotools", "faster_coco_eval"):
        ev = COCOEvaluator(dataset, classwise=True, backend=name)
        ids = sorted(by_image)
        bbox = np.array([row for i in ids for row in by_image[i]], np.float32)
        ev.update(np.array(ids), bbox, np.array([len(by_image[i]) for i in ids]))
        out[name] = (ev.accumulate(), ev.pr_curves)
    (m_ref, c_ref), (m_fast, c_fast) = out["pycocotools"], out["faster_coco_eval"]
    assert m_ref["AP"] > 0.05
    assert m_ref.keys() == m_fast.keys()
    for key in m_ref:
        assert m_fast[key] == pytest.approx(m_ref[key], abs=1e-9, nan_ok=True), key
    assert c_ref.keys() == c_fast.keys()
    for name in c_ref:
        np.testing.assert_allclose(c_fast[name][1], c_ref[name][1], atol=1e-9)
