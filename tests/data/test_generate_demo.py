"""The demo generator writes the same images and boxes in its COCO and VOC views."""

from __future__ import annotations

import importlib.util
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ppdet.data.datasets import COCODataSet, VOCDataSet

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "dataset", "generate_demo.py")


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("generate_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(gen, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gen") / "demo")
    assert gen.generate(out, n_train=8, n_val=20, n_samples=2, seed=0)
    return out


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_layout(demo):
    for path in ["coco/annotations/instances_train.json", "coco/annotations/instances_val.json",
                 "voc/label_list.txt", "voc/ImageSets/Main/train.txt", "voc/ImageSets/Main/val.txt",
                 "samples/sample_00.jpg", "samples/sample_01.jpg"]:  # fmt: skip
        assert os.path.isfile(os.path.join(demo, path)), path
    assert len(os.listdir(os.path.join(demo, "coco/train"))) == 8
    assert len(os.listdir(os.path.join(demo, "voc/JPEGImages"))) == 28


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_and_voc_views_agree(gen, demo, split):
    coco = json.loads(read(os.path.join(demo, f"coco/annotations/instances_{split}.json")))
    ids = [c["id"] for c in coco["categories"]]
    assert ids == [1, 3, 7, 10]  # not contiguous on purpose
    names = {c["id"]: c["name"] for c in coco["categories"]}
    labels = read(os.path.join(demo, "voc/label_list.txt")).decode().split()
    assert labels == [names[i] for i in ids]
    listed = read(os.path.join(demo, f"voc/ImageSets/Main/{split}.txt")).decode().split()
    assert listed == [os.path.splitext(im["file_name"])[0] for im in coco["images"]]
    for image in coco["images"]:
        jpeg = read(os.path.join(demo, "coco", split, image["file_name"]))
        assert jpeg == read(os.path.join(demo, "voc/JPEGImages", image["file_name"]))
        assert 160 <= image["width"] <= 320 and 160 <= image["height"] <= 320
        root = ET.parse(os.path.join(demo, "voc/Annotations", image["file_name"][:-4] + ".xml"))
        assert int(root.findtext("size/width")) == image["width"]
        voc = sorted(
            (o.findtext("name"), int(o.findtext("difficult")),
             *[int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")])
            for o in root.findall("object")
        )  # fmt: skip
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        from_coco = sorted(
            (names[a["category_id"]], int(a["iscrowd"] or max(a["bbox"][2:]) < gen.DIFFICULT_BELOW),
             a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3])
            for a in anns
        )  # fmt: skip
        assert voc == from_coco


def test_val_has_crowd_and_difficult_boxes_and_some_empty_images(demo):
    coco = json.loads(read(os.path.join(demo, "coco/annotations/instances_val.json")))
    assert 0 < sum(a["iscrowd"] for a in coco["annotations"]) < len(coco["annotations"]) / 4
    voc = VOCDataSet(dataset_dir=os.path.join(demo, "voc"), anno_path="ImageSets/Main/val.txt",
                     label_list="label_list.txt")  # fmt: skip
    assert sum(int(r["difficult"].sum()) for r in voc.records) > 0


def test_datasets_read_both_views_the_same(demo):
    coco = COCODataSet(dataset_dir=os.path.join(demo, "coco"), image_dir="val",
                       anno_path="annotations/instances_val.json")  # fmt: skip
    voc = VOCDataSet(dataset_dir=os.path.join(demo, "voc"), anno_path="ImageSets/Main/val.txt",
                     label_list="label_list.txt")  # fmt: skip
    assert coco.label_list == voc.label_list and len(coco) == len(voc) == 20
    for a, b in zip(coco.records, voc.records, strict=True):
        assert os.path.basename(a["im_file"]) == os.path.basename(b["im_file"])
        order_a, order_b = np.lexsort(a["gt_bbox"].T), np.lexsort(b["gt_bbox"].T)
        np.testing.assert_array_equal(a["gt_bbox"][order_a], b["gt_bbox"][order_b])
        np.testing.assert_array_equal(a["gt_class"][order_a], b["gt_class"][order_b])


def test_idempotent_and_deterministic(gen, demo, tmp_path):
    before = read(os.path.join(demo, "coco/annotations/instances_val.json"))
    mtime = os.path.getmtime(os.path.join(demo, "coco/train/000001.jpg"))
    assert not gen.generate(demo, n_train=8, n_val=20, n_samples=2, seed=0)
    assert os.path.getmtime(os.path.join(demo, "coco/train/000001.jpg")) == mtime
    other = str(tmp_path / "again")
    assert gen.main(["--out", other, "--train", "8", "--val", "20", "--samples", "2"]) == 0
    assert read(os.path.join(other, "coco/annotations/instances_val.json")) == before
    assert read(os.path.join(other, "coco/val/000009.jpg")) == read(
        os.path.join(demo, "coco/val/000009.jpg")
    )
    assert gen.generate(other, n_train=2, n_val=2, n_samples=0, seed=1, force=True)
    assert len(os.listdir(os.path.join(other, "coco/train"))) == 2
    assert not os.path.exists(os.path.join(other, "samples"))


def test_rerun_keeps_an_identical_set_and_replaces_a_different_one(gen, tmp_path):
    out = str(tmp_path / "demo")
    assert gen.generate(out, n_train=2, n_val=1, n_samples=1, seed=0)
    assert not gen.generate(out, n_train=2, n_val=1, n_samples=1, seed=0)  # same settings: kept
    assert gen.generate(out, n_train=3, n_val=1, n_samples=1, seed=0)  # other settings: remade
    assert len(os.listdir(os.path.join(out, "coco", "train"))) == 3
