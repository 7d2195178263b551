"""COCO / VOC / image-folder parsing: id mapping, difficult, crowd, and every bad-input case."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from ppdet import PpdetError
from ppdet.data.datasets import COCODataSet, ImageFolder, VOCDataSet
from ppdet.data.datasets.base import SKIPPED_KEY, is_placeholder
from ppdet.data.errors import DataNotFoundError, DatasetError
from ppdet.data.transforms import Decode

from .conftest import painted_image, write_jpeg


def coco(root: str, **kw) -> COCODataSet:
    return COCODataSet(
        dataset_dir=root, image_dir="train", anno_path="annotations/train.json", **kw
    )


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_coco_category_ids_map_both_ways(tiny_coco):
    ds = coco(tiny_coco)
    assert ds.catid2clsid == {1: 0, 3: 1, 7: 2}
    assert ds.clsid2catid == {0: 1, 1: 3, 2: 7}
    assert ds.label_list == ["circle", "square", "triangle"]
    rec = ds.records[0]
    assert rec["im_file"].endswith("a.jpg") and (rec["h"], rec["w"]) == (60, 80)
    assert rec["im_id"].dtype == np.int64 and rec["im_id"].tolist() == [1]
    np.testing.assert_array_equal(rec["gt_bbox"], [[10, 10, 30, 30], [40, 20, 70, 50]])
    assert rec["gt_bbox"].dtype == np.float32
    assert rec["gt_class"].tolist() == [[0], [2]] and rec["gt_class"].dtype == np.int32
    assert rec["is_crowd"].shape == (2, 1) and rec["difficult"].tolist() == [[0], [0]]
    assert len(ds) == 6 and ds.num_classes == 3


def test_coco_crowd_kept_in_records_dropped_in_train_samples(tiny_coco):
    ds = coco(tiny_coco)
    assert ds.records[2]["is_crowd"].tolist() == [[0], [1]]
    assert len(ds[2]["gt_bbox"]) == 2  # eval mode (default): crowd kept
    ds.set_mode("train")
    sample = ds[2]
    assert len(sample["gt_bbox"]) == 1 and sample["is_crowd"].tolist() == [[0]]
    assert len(ds.records[2]["gt_bbox"]) == 2  # the record itself is untouched
    keep = coco(tiny_coco, drop_crowd=False)
    keep.set_mode("train")
    assert len(keep[2]["gt_bbox"]) == 2


def test_coco_bad_entries_warn_once_each_and_are_skipped(make_coco, caplog):
    images = [
        {"file": "ok.jpg", "h": 40, "w": 50, "anns": [(1, [5, 5, 10, 10], 0)]},
        {"file": "missing.jpg", "h": 40, "w": 50, "anns": [(1, [5, 5, 10, 10], 0)], "write": False},
        {
            "file": "zero.jpg",
            "h": 40,
            "w": 50,
            "anns": [(1, [5, 5, 0, 10], 0), (1, [1, 1, 5, 5], 0)],
        },
        {
            "file": "out.jpg",
            "h": 40,
            "w": 50,
            "anns": [(1, [40, 30, 30, 30], 0), (1, [60, 5, 5, 5], 0)],
        },
        {
            "file": "cat.jpg",
            "h": 40,
            "w": 50,
            "anns": [(99, [5, 5, 10, 10], 0), (1, [5, 5, "x", 1], 0)],
        },
    ]
    root = make_coco(images, [(1, "circle")])
    with caplog.at_level(logging.WARNING):
        ds = coco(root)
    lines = warnings_of(caplog)
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    by_file = {os.path.basename(line.split(":")[0]): line for line in lines}
    assert "not found" in by_file["missing.jpg"]
    assert "zero or negative area" in by_file["zero.jpg"]
    assert "clipped 1 box" in by_file["out.jpg"] and "dropped 1 box (outside" in by_file["out.jpg"]
    assert "unknown category_id 99" in by_file["cat.jpg"] and "malformed bbox" in by_file["cat.jpg"]
    files = [os.path.basename(r["im_file"]) for r in ds.records]
    assert files == ["ok.jpg", "zero.jpg", "out.jpg", "cat.jpg"]
    np.testing.assert_array_equal(ds.records[1]["gt_bbox"], [[1, 1, 6, 6]])
    np.testing.assert_array_equal(ds.records[2]["gt_bbox"], [[40, 30, 50, 40]])  # clipped
    assert len(ds.records[3]["gt_bbox"]) == 0


def test_coco_nothing_usable_is_one_line_error(make_coco):
    root = make_coco([{"file": "gone.jpg", "h": 9, "w": 9, "anns": [], "write": False}], [(1, "c")])
    with pytest.raises(DatasetError) as err:
        coco(root)
    assert "train.json" in str(err.value) and "\n" not in str(err.value)


def test_missing_annotation_file_or_image_dir_names_the_download_script(tiny_coco):
    with pytest.raises(DataNotFoundError, match="nope.json") as err:
        COCODataSet(dataset_dir=tiny_coco, image_dir="train", anno_path="nope.json")
    assert "python dataset/coco/download_coco.py" in str(err.value)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, PpdetError)
    with pytest.raises(DataNotFoundError, match="COCO image folder not found: .*nodir"):
        COCODataSet(dataset_dir=tiny_coco, image_dir="nodir", anno_path="annotations/train.json")
    with pytest.raises(DataNotFoundError, match="python dataset/voc/download_voc.py"):
        VOCDataSet(dataset_dir=tiny_coco, anno_path="trainval.txt")
    demo = "dataset/demo/coco"
    with pytest.raises(DataNotFoundError, match="python dataset/generate_demo.py"):
        COCODataSet(dataset_dir=demo, image_dir="x", anno_path="annotations/none.json")


def test_allow_empty_and_empty_ratio(tiny_coco):
    assert len(coco(tiny_coco, allow_empty=False)) == 5
    assert len(coco(tiny_coco, empty_ratio=0.0)) == 5
    assert len(coco(tiny_coco, empty_ratio=0.5)) == 6  # 1 empty of 6 <= half


def test_unreadable_image_replaced_in_train_and_skipped_in_eval(tiny_coco, caplog):
    train_dir = os.path.join(tiny_coco, "train")
    with open(os.path.join(train_dir, "a.jpg"), "rb") as f:
        data = f.read()
    with open(os.path.join(train_dir, "a.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])  # truncated
    with open(os.path.join(train_dir, "b.jpg"), "wb") as f:
        f.write(b"not an image at all")
    ds = coco(tiny_coco)
    ds.set_transform(Decode())
    ds.set_mode("train")
    np.random.seed(0)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            for idx in (0, 1):
                sample = ds[idx]
                assert os.path.basename(sample["im_file"]) not in ("a.jpg", "b.jpg")
                assert sample["image"].shape == (sample["h"], sample["w"], 3)
    lines = warnings_of(caplog)
    assert len(lines) == 2  # once per bad file
    assert any("a.jpg: truncated JPEG" in line for line in lines)
    assert any("b.jpg: not a decodable image" in line for line in lines)
    ds.set_mode("eval")
    sample = ds[0]  # a placeholder that the loader drops from its batch
    assert is_placeholder(sample) and sample[SKIPPED_KEY][0][0].endswith("a.jpg")
    assert "truncated JPEG" in sample[SKIPPED_KEY][0][1]
    assert len(warnings_of(caplog)) == 2  # a.jpg was reported already


def test_voc_parsing_with_difficult_and_both_list_styles(make_voc):
    root = make_voc(
        {"000001": (40, 60, [("dog", 0, 5, 6, 25, 30), ("cat", 1, 30, 10, 59, 39)]),
         "000002": (50, 50, [])},
        ["cat", "dog"],
    )  # fmt: skip
    ds = VOCDataSet(
        dataset_dir=root, anno_path="ImageSets/Main/train.txt", label_list="label_list.txt"
    )
    assert ds.label_list == ["cat", "dog"] and ds.catid2clsid == {0: 0, 1: 1}
    rec = ds.records[0]
    assert (rec["h"], rec["w"]) == (40, 60) and rec["im_file"].endswith("JPEGImages/000001.jpg")
    np.testing.assert_array_equal(rec["gt_bbox"], [[5, 6, 25, 30], [30, 10, 59, 39]])
    assert rec["gt_class"].tolist() == [[1], [0]]
    assert rec["difficult"].tolist() == [[0], [1]] and rec["is_crowd"].tolist() == [[0], [0]]
    assert len(ds.records[1]["gt_bbox"]) == 0

    pairs = os.path.join(root, "pairs.txt")
    with open(pairs, "w") as f:
        f.write("JPEGImages/000001.jpg Annotations/000001.xml\n")
    ds2 = VOCDataSet(dataset_dir=root, anno_path="pairs.txt", label_list="label_list.txt")
    np.testing.assert_array_equal(ds2.records[0]["gt_bbox"], rec["gt_bbox"])


def test_voc_bad_entries_warn_and_are_skipped(make_voc, caplog):
    root = make_voc(
        {"good": (40, 40, [("cat", 0, 1, 1, 20, 20)]),
         "unknown": (40, 40, [("zebra", 0, 1, 1, 20, 20), ("cat", 0, 2, 2, 9, 9)]),
         "flat": (40, 40, [("cat", 0, 10, 10, 10, 30)]),
         "broken": (40, 40, []),
         "noxml": (40, 40, [])},
        ["cat"],
    )  # fmt: skip
    with open(os.path.join(root, "Annotations", "broken.xml"), "w") as f:
        f.write("<annotation><size>")
    os.remove(os.path.join(root, "Annotations", "noxml.xml"))
    os.remove(os.path.join(root, "JPEGImages", "flat.jpg"))
    with caplog.at_level(logging.WARNING):
        ds = VOCDataSet(
            dataset_dir=root, anno_path="ImageSets/Main/train.txt", label_list="label_list.txt"
        )
    lines = warnings_of(caplog)
    assert len(lines) == 4
    assert any("unknown.xml" in x and "unknown class 'zebra'" in x for x in lines)
    assert any("broken.xml: malformed XML" in x for x in lines)
    assert any("noxml.xml: annotation file not found" in x for x in lines)
    assert any("flat.jpg: image file not found" in x for x in lines)
    names = [os.path.basename(r["im_file"]) for r in ds.records]
    assert names == ["good.jpg", "unknown.jpg"]
    assert ds.records[1]["gt_class"].tolist() == [[0]]


def test_voc_degenerate_box_dropped(make_voc, caplog):
    root = make_voc({"a": (40, 40, [("cat", 0, 10, 10, 10, 30), ("cat", 0, 1, 1, 5, 5)])}, ["cat"])
    with caplog.at_level(logging.WARNING):
        ds = VOCDataSet(
            dataset_dir=root, anno_path="ImageSets/Main/train.txt", label_list="label_list.txt"
        )
    assert len(ds.records[0]["gt_bbox"]) == 1
    assert any("a.xml: dropped 1 box (zero or negative area)" in x for x in warnings_of(caplog))


def test_image_folder_lists_images_in_name_order(tiny_coco, tmp_path):
    folder = ImageFolder(anno_path="not/read/here.json", images=[os.path.join(tiny_coco, "train")])
    names = [os.path.basename(r["im_file"]) for r in folder.records]
    assert names == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"]
    assert folder[0]["im_id"].tolist() == [0] and folder.label_list == []
    one = write_jpeg(str(tmp_path / "X.PNG"), painted_image(20, 30, [], []))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.jpg").mkdir()  # listed: the loader skips it with a warning
    folder.set_images([str(tmp_path)])
    assert [os.path.basename(r["im_file"]) for r in folder.records] == ["X.PNG", "sub.jpg"]
    folder.set_images([one])
    assert folder.get_imid2path() == {0: one}
    with pytest.raises(DataNotFoundError, match="nothere.jpg"):
        folder.set_images([str(tmp_path / "nothere.jpg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        folder.set_images([str(tmp_path / "empty")])
