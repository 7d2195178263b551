"""COCO mask (segm) evaluation, mask drawing and mask JSON, checked against pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
import os
from types import SimpleNamespace

import numpy as np
import paddle
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ppdet.evaluation import build_evaluator
from ppdet.evaluation.coco_eval import STAT_NAMES, split_masks
from ppdet.visualize import (
    MASK_ALPHA,
    class_color,
    detections_to_json,
    draw_detections,
    write_detections_json,
)

H, W = 40, 50
# object: (image id, category id, x1, y1, size): 10x10 and 20x20 squares
OBJECTS = [(1, 1, 5, 5, 10), (1, 2, 25, 10, 20), (2, 1, 10, 15, 20)]


def square_mask(x: int, y: int, size: int, dx: int = 0) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y : y + size, x + dx : x + size + dx] = 1
    return m


@pytest.fixture
def dataset(tmp_path):
    anns = []
    for k, (im, cat, x, y, s) in enumerate(OBJECTS):
        anns.append({
            "id": k + 1, "image_id": im, "category_id": cat, "bbox": [x, y, s, s],
            "area": s * s, "iscrowd": 0,
            "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]],
        })  # fmt: skip
    data = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": W, "height": H} for i in (1, 2)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return SimpleNamespace(
        anno_path=str(path),
        clsid2catid={0: 1, 1: 2},
        label_list=["a", "b"],
        records=[{"im_id": np.array([i])} for i in (1, 2)],
    )


def detections(dx: int = 0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Perfect boxes and scores; masks shifted right by ``dx`` px."""
    rows, masks = {1: [], 2: []}, {1: [], 2: []}
    for im, cat, x, y, s in OBJECTS:
        rows[im].append([cat - 1, 0.9, x, y, x + s, y + s])
        masks[im].append(square_mask(x, y, s, dx))
    bbox = np.array(rows[1] + rows[2], np.float32)
    return bbox, np.array([2, 1], np.int32), [np.stack(masks[1]), np.stack(masks[2])]


def pycocotools_segm(gt_path: str, results: list[dict]) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(results), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_perfect_masks_give_mask_ap_one(dataset, tmp_path):
    ev = build_evaluator("COCO", dataset, output_dir=str(tmp_path))
    bbox, num, masks = detections()
    ev.update(np.array([1, 2]), bbox, num, mask=masks)
    metrics = ev.accumulate()
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["mask_AP"] == pytest.approx(1.0)
    assert set(metrics) == set(STAT_NAMES) | {f"mask_{n}" for n in STAT_NAMES}
    written = json.loads((tmp_path / "mask.json").read_text())
    assert len(written) == 3 and written[0]["category_id"] == 1
    decoded = mask_utils.decode(written[0]["segmentation"])
    np.testing.assert_array_equal(decoded, masks[0][0])


def test_shifted_masks_match_pycocotools(dataset):
    ev = build_evaluator("COCO", dataset, classwise=True)
    bbox, num, masks = detections(dx=2)
    ev.update(np.array([1, 2]), bbox, num, mask=masks)
    metrics = ev.accumulate()
    expected = pycocotools_segm(dataset.anno_path, ev.mask_results)
    for name, value in zip(STAT_NAMES, expected):
        assert metrics[f"mask_{name}"] == pytest.approx(value)
    # category b: one 20x20 square shifted 2 px, IoU 360/440 = 0.818 -> matched at the
    # thresholds .50 .. .80 (7 of 10) with precision 1 -> AP 0.7
    assert metrics["mask_AP/b"] == pytest.approx(0.7)
    assert metrics["mask_AP50"] == pytest.approx(1.0)
    assert metrics["mask_AP"] < 1.0
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP/b"] == pytest.approx(1.0)


def test_tensor_masks_equal_list_masks(dataset):
    bbox, num, masks = detections(dx=1)
    list_ev = build_evaluator("COCO", dataset)
    list_ev.update(np.array([1, 2]), bbox, num, mask=masks)
    tensor_ev = build_evaluator("COCO", dataset)
    tensor_ev.update(np.array([1, 2]), bbox, num, mask=paddle.to_tensor(np.concatenate(masks)))
    assert list_ev.mask_results == tensor_ev.mask_results
    assert list_ev.accumulate()["mask_AP"] == tensor_ev.accumulate()["mask_AP"]


def test_without_masks_nothing_changes(dataset, tmp_path):
    ev = build_evaluator("COCO", dataset, output_dir=str(tmp_path))
    bbox, num, _ = detections()
    ev.update(np.array([1, 2]), bbox, num)
    metrics = ev.accumulate()
    assert set(metrics) == set(STAT_NAMES)
    assert not os.path.exists(tmp_path / "mask.json")


def test_mask_rows_must_match_bbox_num():
    with pytest.raises(ValueError, match="bbox_num"):
        split_masks([np.zeros((1, 4, 4), np.uint8)], np.array([2]))
    parts = split_masks(np.zeros((3, 4, 4), np.uint8), np.array([1, 0, 2]))
    assert [len(p) for p in parts] == [1, 0, 2]


def test_negative_class_rows_have_no_mask_result(dataset):
    ev = build_evaluator("COCO", dataset)
    bbox = np.array([[-1, 0.5, 0, 0, 1, 1], [0, 0.9, 5, 5, 15, 15]], np.float32)
    ev.update(np.array([1]), bbox, np.array([2]), mask=[np.stack([square_mask(0, 0, 1)] * 2)])
    assert len(ev.results) == len(ev.mask_results) == 1


# ------------------------------------------------------------------ drawing and JSON
def test_draw_fills_masks_semi_transparently():
    image = np.full((H, W, 3), 100, np.uint8)
    mask = square_mask(10, 10, 20)[None]  # [1, H, W]
    bbox = np.array([[1, 0.9, 10, 10, 30, 30]], np.float32)
    drawn = draw_detections(image, bbox, ["a", "b"], threshold=0.5, mask=mask)
    colour = np.array(class_color(1), np.float32)
    expected = np.round(100 * (1 - MASK_ALPHA) + colour * MASK_ALPHA)
    np.testing.assert_array_equal(drawn[27, 27], expected)  # inside, below the label
    np.testing.assert_array_equal(drawn[35, 45], [100, 100, 100])  # outside
    below = draw_detections(image, bbox, None, threshold=0.95, mask=mask)
    np.testing.assert_array_equal(below, image)  # under the threshold: nothing drawn


def test_json_has_rle_segmentation(tmp_path):
    masks = np.stack([square_mask(5, 5, 10), square_mask(20, 5, 4)])
    bbox = np.array([[0, 0.3, 5, 5, 15, 15], [1, 0.8, 20, 5, 24, 9]], np.float32)
    entry = detections_to_json("x.jpg", 3, bbox, ["a", "b"], mask=masks)
    first, second = entry["detections"]  # highest score first
    assert first["class_id"] == 1
    np.testing.assert_array_equal(mask_utils.decode(first["segmentation"]), masks[1])
    np.testing.assert_array_equal(mask_utils.decode(second["segmentation"]), masks[0])
    path = str(tmp_path / "bbox.json")
    write_detections_json(path, [{"im_file": "x.jpg", "im_id": 3, "bbox": bbox, "mask": masks}])
    (saved,) = json.loads(open(path).read())
    assert saved["detections"][0]["segmentation"]["size"] == [H, W]


class MaskModel(paddle.nn.Layer):
    """Eval-mode stand-in: one detection per image covering its top-left quarter."""

    def predict(self, batch: dict) -> dict:  # what Trainer / Predictor call
        b = batch["image"].shape[0]
        sizes = (batch["im_shape"] / batch["scale_factor"]).numpy().round().astype(int)
        rows, masks = [], []
        for h, w in sizes:
            rows.append([0, 0.9, 0, 0, w / 2, h / 2])
            m = np.zeros((1, h, w), np.uint8)
            m[:, : h // 2, : w // 2] = 1
            masks.append(m)
        return {
            "bbox": paddle.to_tensor(np.array(rows, np.float32)),
            "bbox_num": paddle.to_tensor(np.ones(b, np.int32)),
            "mask": masks,
        }


def test_predictor_draws_and_returns_masks(tiny_demo_data, tmp_path):
    import cv2

    from ppdet.engine.predictor import Predictor, save_visualizations

    coco = os.path.join(tiny_demo_data, "coco")
    cfg = {
        "TestDataset": {
            "name": "ImageFolder",
            "anno_path": f"{coco}/annotations/instances_val.json",
        },
        "TestReader": {
            "sample_transforms": [
                {"Decode": {}},
                {"Resize": {"target_size": [64, 64], "keep_ratio": False}},
                {"NormalizeImage": {}},
                {"Permute": {}},
            ],
            "batch_size": 2,
        },
    }
    samples = sorted(
        os.path.join(tiny_demo_data, "samples", f)
        for f in os.listdir(os.path.join(tiny_demo_data, "samples"))
    )
    predictor = Predictor(cfg, "", model=MaskModel())
    results, labels = predictor.predict(samples)
    assert len(results) == 2
    for result in results:
        image = cv2.imread(result["im_file"])
        h, w = image.shape[:2]
        assert result["mask"].shape == (1, h, w) and result["mask"].dtype == np.uint8
    written = save_visualizations(results, labels, str(tmp_path), threshold=0.5)
    drawn = cv2.imread(written[0]).astype(np.float32)
    original = cv2.imread(results[0]["im_file"]).astype(np.float32)
    h, w = original.shape[:2]
    quarter = (slice(h // 8 + 10, h // 2 - 4), slice(4, w // 2 - 4))  # below the label
    rest = (slice(h // 2 + 4, None), slice(w // 2 + 4, None))
    inside = np.abs(drawn[quarter] - original[quarter]).mean()
    outside = np.abs(drawn[rest] - original[rest]).mean()
    assert inside > 10 > outside  # the quarter is tinted, the rest only re-encoded


class OracleMaskModel(paddle.nn.Layer):
    """Eval-mode stand-in returning the ground truth of each image (boxes and rasterised
    polygons), as a Mask R-CNN that is always right would."""

    def __init__(self, anno_path: str) -> None:
        super().__init__()
        self.coco = COCO(anno_path)
        self.catid2clsid = {c: i for i, c in enumerate(sorted(self.coco.getCatIds()))}

    def predict(self, batch: dict) -> dict:  # what Trainer calls
        rows, counts, masks = [], [], []
        for im_id in batch["im_id"].numpy().reshape(-1).tolist():
            anns = [a for a in self.coco.imgToAnns[im_id] if not a["iscrowd"]]
            for a in anns:
                x, y, w, h = a["bbox"]
                rows.append([self.catid2clsid[a["category_id"]], 0.9, x, y, x + w, y + h])
            info = self.coco.imgs[im_id]
            empty = np.zeros((0, info["height"], info["width"]), np.uint8)
            masks.append(np.stack([self.coco.annToMask(a) for a in anns]) if anns else empty)
            counts.append(len(anns))
        return {
            "bbox": paddle.to_tensor(np.array(rows, np.float32).reshape(-1, 6)),
            "bbox_num": paddle.to_tensor(np.array(counts, np.int32)),
            "mask": masks,
        }


def test_trainer_evaluates_masks_on_the_demo_set(tiny_demo_data, tmp_path, capsys):
    import ppdet
    from ppdet.engine.trainer import Trainer
    from tests.conftest import DEMO_CONFIG, tiny_overrides

    cfg = ppdet.load_config(DEMO_CONFIG, tiny_overrides(tiny_demo_data, str(tmp_path)))
    trainer = Trainer(cfg, output_dir=str(tmp_path))
    anno = os.path.join(tiny_demo_data, "coco", "annotations", "instances_val.json")
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.model = OracleMaskModel(anno)
    metrics = trainer.evaluate()
    assert metrics["AP"] == pytest.approx(1.0) and metrics["mask_AP"] == pytest.approx(1.0)
    summary = [line for line in capsys.readouterr().out.splitlines() if "eval summary" in line]
    assert "mask AP@[.5:.95] = 1.0000" in summary[-1]
    assert os.path.isfile(tmp_path / "mask.json")
    record = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert record["metrics"]["mask_AP50"] == pytest.approx(1.0)
