"""Instance polygons (``gt_poly``): COCO loading, transforms that move them like the boxes, the
batch list, and the demo set's outlines."""

from __future__ import annotations

import json
import logging
import os

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from ppdet.data.datasets import COCODataSet
from ppdet.data.loader import Collate, build_loader
from ppdet.data.transforms import (
    BatchRandomResize,
    Mixup,
    PadBatch,
    PadGT,
    RandomCrop,
    RandomExpand,
    RandomFlip,
    Resize,
)
from ppdet.data.transforms.compose import BatchCompose
from ppdet.data.transforms.gt_fields import clip_polygon, polygon_area, select_gt


def rect(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    return np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float32)


def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@pytest.fixture
def coco_dir(tmp_path):
    """Two images (60x40 and 50x50) and every kind of segmentation."""
    os.makedirs(tmp_path / "images")
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((40, 60, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "b.png"), np.zeros((50, 50, 3), np.uint8))
    square = np.zeros((40, 60), np.uint8)
    square[10:20, 30:36] = 1  # rows 10..19, cols 30..35
    anns = [
        # 0: one polygon (a triangle)
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [2, 2, 10, 10], "iscrowd": 0,
         "segmentation": [[2, 2, 12, 2, 7, 12]]},
        # 1: two polygons (a cross), one vertex outside the image (clamped to x = 60)
        {"id": 2, "image_id": 1, "category_id": 9, "bbox": [40, 20, 20, 10], "iscrowd": 0,
         "segmentation": [[40, 24, 62, 24, 62, 26, 40, 26], [49, 20, 51, 20, 51, 30, 49, 30]]},
        # 2: crowd RLE: a crowd box without polygons
        {"id": 3, "image_id": 1, "category_id": 5, "bbox": [0, 30, 10, 8], "iscrowd": 1,
         "segmentation": {"size": [40, 60], "counts": [1230, 5, 1165]}},
        # 3: non-crowd RLE -> traced into one polygon
        {"id": 4, "image_id": 1, "category_id": 9, "bbox": [30, 10, 6, 10], "iscrowd": 0,
         "segmentation": rle_of(square)},
        # 4: degenerate polygon (2 points): object dropped, box too
        {"id": 5, "image_id": 1, "category_id": 5, "bbox": [20, 20, 5, 5], "iscrowd": 0,
         "segmentation": [[20, 20, 25, 25]]},
        # 5: no segmentation at all: dropped
        {"id": 6, "image_id": 2, "category_id": 5, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {"id": 7, "image_id": 2, "category_id": 9, "bbox": [10, 10, 20, 20], "iscrowd": 0,
         "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]},
    ]  # fmt: skip
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 60, "height": 40},
            {"id": 2, "file_name": "b.png", "width": 50, "height": 50},
        ],
        "annotations": anns,
        "categories": [{"id": 5, "name": "tri"}, {"id": 9, "name": "box"}],
    }
    os.makedirs(tmp_path / "annotations")
    with open(tmp_path / "annotations" / "inst.json", "w") as f:
        json.dump(data, f)
    return str(tmp_path)


def test_coco_loads_polygons_in_box_order(coco_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="ppdet.data"):
        ds = COCODataSet(coco_dir, "images", "annotations/inst.json", load_segm=True)
    a, b = ds.records
    assert len(a["gt_bbox"]) == len(a["gt_poly"]) == 4  # the degenerate object is gone
    np.testing.assert_array_equal(a["gt_class"][:, 0], [0, 1, 0, 1])
    assert a["gt_poly"][0][0].dtype == np.float32
    np.testing.assert_array_equal(a["gt_poly"][0][0], [2, 2, 12, 2, 7, 12])
    np.testing.assert_array_equal(a["gt_poly"][1][0], [40, 24, 60, 24, 60, 26, 40, 26])
    assert len(a["gt_poly"][1]) == 2
    assert a["is_crowd"][2, 0] == 1 and a["gt_poly"][2] == []
    traced = a["gt_poly"][3]
    assert len(traced) == 1
    xs, ys = traced[0][0::2], traced[0][1::2]  # contour through the pixel centres
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (30.5, 35.5, 10.5, 19.5)
    assert len(b["gt_poly"]) == 1 and len(b["gt_bbox"]) == 1
    text = caplog.text
    assert "annotation id 5" in text and "annotation id 6" in text and "b.png" in text


def test_without_load_segm_there_are_no_polygons(coco_dir):
    ds = COCODataSet(coco_dir, "images", "annotations/inst.json")
    assert all("gt_poly" not in r for r in ds.records)
    assert len(ds.records[0]["gt_bbox"]) == 5  # nothing dropped for its segmentation


def test_crowd_dropped_from_train_samples_with_its_polygons(coco_dir):
    ds = COCODataSet(coco_dir, "images", "annotations/inst.json", load_segm=True)
    ds.set_mode("train")
    sample = ds[0]
    assert len(sample["gt_bbox"]) == len(sample["gt_poly"]) == 3
    assert all(len(obj) > 0 for obj in sample["gt_poly"])


# ------------------------------------------------------------------ transforms
def sample_with(boxes: list[list[float]], h: int = 40, w: int = 60) -> dict:
    """A sample whose object m is the rectangle polygon of box m (plus a triangle for m=0)."""
    boxes_np = np.array(boxes, np.float32)
    polys = [[rect(*b)] for b in boxes_np]
    x1, y1, x2, y2 = boxes_np[0]
    polys[0].append(np.array([x1, y1, x2, y1, x1, y2], np.float32))
    m = len(boxes)
    return {
        "image": np.zeros((h, w, 3), np.uint8),
        "im_shape": np.array([h, w], np.float32),
        "scale_factor": np.ones(2, np.float32),
        "gt_bbox": boxes_np,
        "gt_class": np.arange(m, dtype=np.int32).reshape(m, 1),
        "is_crowd": np.zeros((m, 1), np.int32),
        "gt_poly": polys,
    }


def assert_rects_match_boxes(sample: dict) -> None:
    """The first polygon of each object is its box's rectangle, in the same order."""
    assert len(sample["gt_poly"]) == len(sample["gt_bbox"])
    for box, obj in zip(sample["gt_bbox"], sample["gt_poly"]):
        poly = obj[0]
        got = [poly[0::2].min(), poly[1::2].min(), poly[0::2].max(), poly[1::2].max()]
        np.testing.assert_allclose(got, box, atol=1e-4)


def test_resize_scales_polygons():
    s = Resize([20, 120], keep_ratio=False)(sample_with([[10, 4, 30, 20]]))
    np.testing.assert_allclose(s["gt_poly"][0][0], rect(20, 2, 60, 10))
    np.testing.assert_allclose(s["gt_poly"][0][1], [20, 2, 60, 2, 20, 10])
    assert_rects_match_boxes(s)


def test_flip_mirrors_polygons():
    s = RandomFlip(prob=1.0)(sample_with([[10, 4, 30, 20]]))
    # x -> 60 - x: (10, 4) -> (50, 4), (30, 4) -> (30, 4)
    np.testing.assert_allclose(s["gt_poly"][0][1], [50, 4, 30, 4, 50, 20])
    assert_rects_match_boxes(s)


def test_expand_shifts_polygons_by_the_box_offset():
    np.random.seed(3)
    before = sample_with([[10, 4, 30, 20], [0, 0, 5, 5]])
    s = RandomExpand(ratio=3.0, prob=1.0)(sample_with([[10, 4, 30, 20], [0, 0, 5, 5]]))
    dx, dy = s["gt_bbox"][0, :2] - before["gt_bbox"][0, :2]
    assert dx > 0 or dy > 0
    expected = before["gt_poly"][0][1] + np.array([dx, dy] * 3, np.float32)
    np.testing.assert_allclose(s["gt_poly"][0][1], expected)
    assert_rects_match_boxes(s)


def test_clip_polygon_against_a_window():
    # a triangle (0,0) (10,0) (0,10) cut by x <= 5: a quadrilateral of area 50 - 12.5
    part = clip_polygon(np.array([0, 0, 10, 0, 0, 10], np.float32), 0, 0, 5, 10)
    assert polygon_area(part) == pytest.approx(37.5)
    assert part[0::2].max() == 5
    assert len(clip_polygon(rect(20, 20, 30, 30), 0, 0, 10, 10)) == 0  # nothing inside


def test_crop_clips_polygons_and_drops_objects():
    s = sample_with([[10, 4, 30, 20], [40, 22, 58, 38], [2, 2, 8, 8]])
    # object 2 keeps its box (centre rule says keep) but we replace its polygon by one that
    # lies fully outside the crop: then the object is dropped, box too
    s["gt_poly"][2] = [np.array([0, 0, 4, 0, 0, 4], np.float32)]
    keep = np.array([True, False, True])
    out = RandomCrop._crop(s, np.array([5, 5, 35, 30]), keep)
    np.testing.assert_allclose(out["gt_bbox"], [[5, 0, 25, 15]])
    np.testing.assert_array_equal(out["gt_class"][:, 0], [0])
    assert len(out["gt_poly"]) == 1
    np.testing.assert_allclose(out["gt_poly"][0][0], [5, 0, 25, 0, 25, 15, 5, 15])
    # triangle (10,4) (30,4) (10,20) shifted by (-5,-5): (5,-1) (25,-1) (5,15), area 160; the
    # cut y >= 0 removes a strip 1 px high whose widths are 20 (y=-1) and 18.75 (y=0)
    tri = out["gt_poly"][0][1]
    assert tri[1::2].min() == 0 and tri[0::2].max() <= 25
    assert polygon_area(tri) == pytest.approx(160 - (20 + 18.75) / 2, abs=1e-3)


def test_random_crop_keeps_polygons_aligned():
    np.random.seed(0)
    op = RandomCrop(thresholds=[0.1], allow_no_crop=False)
    for _ in range(20):
        s = op(sample_with([[10, 4, 30, 20], [40, 22, 58, 38], [2, 2, 8, 8]]))
        assert_rects_match_boxes(s)
        assert len(s["gt_class"]) == len(s["gt_poly"])


def test_mixup_joins_polygon_lists():
    np.random.seed(1)
    a, b = sample_with([[10, 4, 30, 20]]), sample_with([[0, 0, 5, 5], [1, 1, 9, 9]])
    a["mixup"] = b
    out = Mixup(alpha=1e3, beta=1e3)(a)  # factor ~0.5
    assert len(out["gt_poly"]) == 3
    assert_rects_match_boxes(out)


def test_select_gt_with_index_array():
    s = select_gt(sample_with([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]]), np.array([2, 0]))
    assert_rects_match_boxes(s)
    np.testing.assert_array_equal(s["gt_class"][:, 0], [2, 0])


def test_batch_resize_pad_and_padgt_keep_the_list():
    samples = [sample_with([[10, 4, 30, 20], [0, 0, 6, 6]]), sample_with([[1, 1, 9, 9]], 20, 30)]
    samples = BatchRandomResize([[80, 120]], keep_ratio=False)(samples)
    np.testing.assert_allclose(samples[1]["gt_poly"][0][0], rect(4, 4, 36, 36))
    for s in samples:
        s["image"] = s["image"].transpose(2, 0, 1).astype(np.float32)
    samples = PadBatch(pad_to_stride=32)(samples)
    np.testing.assert_allclose(samples[1]["gt_poly"][0][0], rect(4, 4, 36, 36))
    samples = PadGT()(samples)
    assert [len(s["gt_poly"]) for s in samples] == [2, 1]
    assert samples[1]["gt_bbox"].shape == (2, 4)
    cut = PadGT(num_max_boxes=1)([sample_with([[10, 4, 30, 20], [0, 0, 6, 6]])])
    assert len(cut[0]["gt_poly"]) == 1


def test_collate_keeps_a_list_of_per_image_lists():
    samples = [sample_with([[10, 4, 30, 20], [0, 0, 6, 6]]), sample_with([[1, 1, 9, 9]])]
    for s in samples:
        s["image"] = s["image"].transpose(2, 0, 1).astype(np.float32)
        s["im_id"] = np.array([0], np.int64)
    batch = Collate(BatchCompose([]))._collate(samples)
    assert isinstance(batch["gt_poly"], list) and [len(p) for p in batch["gt_poly"]] == [2, 1]
    assert batch["gt_bbox"].shape == (2, 2, 4)
    np.testing.assert_array_equal(batch["gt_poly"][1][0][0], rect(1, 1, 9, 9))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_loader_batches_carry_numpy_polygons(coco_dir, num_workers):
    ds = COCODataSet(coco_dir, "images", "annotations/inst.json", load_segm=True)
    ds.set_mode("eval")
    cfg = {
        "EvalReader": {
            "sample_transforms": [
                {"Decode": {}},
                {"Resize": {"target_size": [80, 80], "keep_ratio": False}},
                {"Permute": {}},
            ],
            "batch_size": 2,
            "num_workers": num_workers,
        }
    }
    batch = next(iter(build_loader(cfg, "eval", ds)))
    polys = batch["gt_poly"]
    assert isinstance(polys, list) and [len(p) for p in polys] == [4, 1]
    first = polys[0][0][0]
    assert isinstance(first, np.ndarray) and first.dtype == np.float32
    # image 1 is 60x40 -> 80x80: x * 4/3, y * 2
    expected = np.array([2, 2, 12, 2, 7, 12]) * np.tile([4 / 3, 2], 3)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    assert batch["gt_bbox"].shape == [2, 4, 4]


# ------------------------------------------------------------------ demo data
def test_demo_polygons_rasterise_to_the_shape_area(tiny_demo_data):
    checked = 0
    for split in ("train", "val"):
        path = os.path.join(tiny_demo_data, "coco", "annotations", f"instances_{split}.json")
        with open(path) as f:
            data = json.load(f)
        sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
        for ann in data["annotations"]:
            h, w = sizes[ann["image_id"]]
            segm = ann["segmentation"]
            rles = mask_utils.frPyObjects(segm, h, w)
            mask = mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles)
            x, y, bw, bh = ann["bbox"]
            ys, xs = np.nonzero(mask)
            if ann["iscrowd"]:  # exact RLE of the drawn circles: its extent is the box
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + bw, y + bh)
                continue
            assert xs.min() >= x - 1 and xs.max() < x + bw + 1
            assert ys.min() >= y - 1 and ys.max() < y + bh + 1
            # area drawn (pixel count, "area") vs the polygons' raster: boundary pixels differ
            assert 0.75 * ann["area"] <= mask.sum() <= 1.05 * ann["area"], ann["id"]
            if len(segm) == 1:  # one polygon: raster ~ shoelace area
                shoelace = polygon_area(np.array(segm[0]))
                assert mask.sum() == pytest.approx(shoelace, rel=0.12), ann["id"]
            checked += 1
    assert checked > 10
