"""Fixtures: tiny COCO / VOC sets written to tmp_path, and samples with painted boxes."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

import ppdet.data  # noqa: F401  (registers datasets and transforms)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def painted_image(h: int, w: int, boxes: list, colours: list) -> np.ndarray:
    """uint8 RGB [h, w, 3], grey, with each integer box x1y1x2y2 filled with its colour."""
    image = np.full((h, w, 3), 128, np.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes, colours, strict=True):
        image[int(y1) : int(y2), int(x1) : int(x2)] = colour
    return image


def write_jpeg(path: str, image: np.ndarray) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def inside(image: np.ndarray, box: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels [N, 3] of an HWC image strictly inside ``box`` (shrunk by ``margin`` px)."""
    x1, y1, x2, y2 = np.round(np.asarray(box, float)).astype(int)
    return image[y1 + margin : y2 - margin, x1 + margin : x2 - margin].reshape(-1, 3)


@pytest.fixture
def make_coco(tmp_path):
    """make_coco(images, categories) -> dataset_dir with train/ and annotations/train.json.

    ``images``: list of dicts {file, h, w, anns: [(catid, [x, y, w, h], iscrowd)], write: bool}.
    Each written image is grey with its boxes painted red.
    """

    def make(images: list[dict], categories: list[tuple[int, str]]) -> str:
        root = tmp_path / "coco"
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "train").mkdir(exist_ok=True)
        coco = {"images": [], "annotations": [], "categories": []}
        coco["categories"] = [{"id": cid, "name": name} for cid, name in categories]
        for i, spec in enumerate(images, start=1):
            im_id = spec.get("id", i)
            coco["images"].append(
                {"id": im_id, "file_name": spec["file"], "height": spec["h"], "width": spec["w"]}
            )
            boxes = []
            for cat, bbox, crowd in spec.get("anns", []):
                coco["annotations"].append(
                    {"id": len(coco["annotations"]) + 1, "image_id": im_id, "category_id": cat,
                     "bbox": bbox, "iscrowd": crowd, "area": 1.0}
                )  # fmt: skip
                if all(isinstance(v, (int, float)) for v in bbox) and min(bbox[2:]) > 0:
                    boxes.append([bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]])
            if spec.get("write", True):
                img = painted_image(spec["h"], spec["w"], boxes, [RED] * len(boxes))
                write_jpeg(str(root / "train" / spec["file"]), img)
        (root / "annotations" / "train.json").write_text(json.dumps(coco))
        return str(root)

    return make


@pytest.fixture
def tiny_coco(make_coco):
    """Six images of mixed sizes, categories 1/3/7, one crowd box, one image without boxes."""
    images = [
        {
            "file": "a.jpg",
            "h": 60,
            "w": 80,
            "anns": [(1, [10, 10, 20, 20], 0), (7, [40, 20, 30, 30], 0)],
        },
        {"file": "b.jpg", "h": 72, "w": 48, "anns": [(3, [5, 5, 30, 40], 0)]},
        {
            "file": "c.jpg",
            "h": 64,
            "w": 64,
            "anns": [(7, [0, 0, 64, 32], 0), (1, [8, 40, 20, 20], 1)],
        },
        {"file": "d.jpg", "h": 50, "w": 90, "anns": []},
        {
            "file": "e.jpg",
            "h": 80,
            "w": 60,
            "anns": [(3, [20, 30, 25, 25], 0), (3, [0, 0, 10, 10], 0), (1, [30, 5, 25, 20], 0)],
        },
        {"file": "f.jpg", "h": 56, "w": 70, "anns": [(1, [30, 10, 30, 30], 0)]},
    ]
    return make_coco(images, [(3, "square"), (1, "circle"), (7, "triangle")])


def coco_cfg(root: str, **reader) -> dict:
    """A config with TrainDataset/EvalDataset on ``root`` and a small fixed-size reader."""
    dataset = {"name": "COCODataSet", "dataset_dir": root, "image_dir": "train",
               "anno_path": "annotations/train.json"}  # fmt: skip
    base_reader = {
        "sample_transforms": [
            {"Decode": {}},
            {"RandomFlip": {"prob": 0.5}},
            {"Resize": {"target_size": [64, 64], "keep_ratio": False}},
            {"NormalizeImage": {}},
            {"Permute": {}},
        ],
        "batch_size": 2,
    }
    base_reader.update(reader)
    return {
        "TrainDataset": dict(dataset),
        "EvalDataset": dict(dataset),
        "TrainReader": base_reader,
        "EvalReader": dict(base_reader, sample_transforms=base_reader["sample_transforms"][:1]
                           + base_reader["sample_transforms"][2:]),
    }  # fmt: skip


VOC_XML = """<annotation><filename>{name}.jpg</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
VOC_OBJECT = """<object><name>{cls}</name><difficult>{difficult}</difficult>
<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>
"""


@pytest.fixture
def make_voc(tmp_path):
    """make_voc({id: (h, w, [(cls, difficult, x1, y1, x2, y2)])}, labels) -> dataset_dir.

    Writes JPEGImages/, Annotations/, ImageSets/Main/train.txt (ids) and label_list.txt.
    """

    def make(images: dict, labels: list[str], write_images: bool = True) -> str:
        root = tmp_path / "voc"
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for name, (h, w, objects) in images.items():
            objs = "".join(
                VOC_OBJECT.format(cls=c, difficult=d, x1=x1, y1=y1, x2=x2, y2=y2)
                for c, d, x1, y1, x2, y2 in objects
            )
            (root / "Annotations" / f"{name}.xml").write_text(
                VOC_XML.format(name=name, h=h, w=w, objects=objs)
            )
            if write_images:
                write_jpeg(str(root / "JPEGImages" / f"{name}.jpg"), painted_image(h, w, [], []))
        (root / "ImageSets/Main/train.txt").write_text("".join(f"{n}\n" for n in images))
        (root / "label_list.txt").write_text("".join(f"{n}\n" for n in labels))
        return str(root)

    return make
