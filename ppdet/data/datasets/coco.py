"""COCO-format detection dataset (boxes only)."""

from __future__ import annotations

import json
import numbers
import os
from collections import defaultdict

import cv2
import numpy as np

from ppdet.config.registry import register
from ppdet.data.errors import DatasetError

from .base import (
    BadInputLog,
    DetDataset,
    clean_boxes,
    describe,
    make_record,
    require_dir,
    require_file,
)


def coco_categories(data: dict, source: str) -> tuple[dict[int, int], dict[int, int], list[str]]:
    """(catid2clsid, clsid2catid, names): category ids in ascending order map to 0..C-1."""
    try:
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        ids = [int(c["id"]) for c in cats]
        names = [str(c.get("name", c["id"])) for c in cats]
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{source}: 'categories' must be a list of {{id, name}}") from None
    if not ids:
        raise DatasetError(f"{source}: no categories")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{source}: duplicate category ids")
    catid2clsid = {cat: i for i, cat in enumerate(ids)}
    return catid2clsid, {i: cat for cat, i in catid2clsid.items()}, names


def load_coco_json(path: str) -> dict:
    """The parsed JSON file; DatasetError (one line) if it is not a COCO detection file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or "categories" not in data:
        raise DatasetError(f"{path}: not a COCO file (no 'categories')")
    return data


def _is_box(value: object) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    )


@register("dataset")
class COCODataSet(DetDataset):
    """Images listed in a COCO ``instances_*.json``.

    Args:
        dataset_dir: root directory; ``image_dir`` and ``anno_path`` are relative to it.
        image_dir: folder of the images (``file_name`` of each image is relative to it).
        anno_path: the COCO json.
        allow_empty, empty_ratio, drop_crowd: see DetDataset.

    Category ids (possibly non-contiguous, e.g. 1, 3, 7) map in ascending order to class ids
    0..C-1: ``catid2clsid``, ``clsid2catid``; ``label_list`` holds the names. Boxes [x, y, w, h]
    become x1y1x2y2. Bad entries are skipped with one warning line each (missing image file,
    malformed or zero-area box, unknown category, box outside the image); boxes sticking out
    are clipped. ``im_id`` is the COCO image id.
    """

    def __init__(
        self,
        dataset_dir: str = "",
        image_dir: str = "",
        anno_path: str = "",
        allow_empty: bool = True,
        empty_ratio: float = 1.0,
        drop_crowd: bool | None = None,
    ) -> None:
        super().__init__(dataset_dir, image_dir, anno_path, allow_empty, empty_ratio, drop_crowd)
        if not anno_path:
            raise ValueError("COCODataSet needs anno_path")
        anno_file = require_file(self.get_anno(), "COCO annotation file")
        image_root = require_dir(self.path(image_dir), "image directory")
        data = load_coco_json(anno_file)
        self.catid2clsid, self.clsid2catid, self.label_list = coco_categories(data, anno_file)
        images = data.get("images")
        if not isinstance(images, list):
            raise DatasetError(f"{anno_file}: 'images' must be a list")
        anns = defaultdict(list)
        for ann in data.get("annotations") or []:
            if isinstance(ann, dict):
                anns[ann.get("image_id")].append(ann)
        log = BadInputLog()
        records = []
        for image in images:
            record = self._parse_image(image, anns, image_root, anno_file, log)
            if record is not None:
                records.append(record)
        log.finish(anno_file)
        self.records = self.finish_records(records, anno_file)

    def _parse_image(
        self, image: dict, anns: dict, image_root: str, anno_file: str, log: BadInputLog
    ) -> dict | None:
        source = os.path.basename(anno_file)
        try:
            im_id, file_name = int(image["id"]), str(image["file_name"])
        except (KeyError, TypeError, ValueError):
            log.warn(
                f"{anno_file}: image entry without a valid id/file_name skipped: {image!r:.80}"
            )
            return None
        im_file = os.path.join(image_root, file_name)
        if not os.path.isfile(im_file):
            log.warn(f"{im_file}: image file not found (listed in {source}); skipped")
            return None
        w, h = image.get("width"), image.get("height")
        if not (isinstance(w, numbers.Real) and isinstance(h, numbers.Real) and w > 0 and h > 0):
            shape = getattr(cv2.imread(im_file), "shape", None)
            if shape is None:
                log.warn(f"{im_file}: no width/height in {source} and unreadable; skipped")
                return None
            h, w = shape[:2]
        boxes, classes, crowd, problems = [], [], [], []
        for ann in anns.get(image["id"], []):
            bbox, cat = ann.get("bbox"), ann.get("category_id")
            if not _is_box(bbox):
                problems.append(("dropped", "malformed bbox"))
            elif cat not in self.catid2clsid:
                problems.append(("dropped", f"unknown category_id {cat!r}"))
            else:
                x, y, bw, bh = (float(v) for v in bbox)
                boxes.append([x, y, x + bw, y + bh])
                classes.append(self.catid2clsid[cat])
                crowd.append(1 if ann.get("iscrowd", 0) else 0)
        box_array, keep, box_problems = clean_boxes(
            np.array(boxes, np.float32).reshape(-1, 4), w, h
        )
        problems += box_problems
        if problems:
            log.warn(f"{im_file}: {describe(problems)} [{source}]")
        return make_record(
            im_file,
            im_id,
            h,
            w,
            box_array[keep],
            np.array(classes, np.int32)[keep],
            np.array(crowd, np.int32)[keep],
        )
