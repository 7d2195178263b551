"""COCO-format detection dataset: boxes, and polygons with ``load_segm``."""

from __future__ import annotations

import json
import numbers
import os
from collections import defaultdict

import cv2
import numpy as np

from ppdet.config.registry import register
from ppdet.data.errors import DatasetError, ImageDecodeError
from ppdet.data.image_io import image_size
from ppdet.data.transforms.gt_fields import polygon_area

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


def parse_segmentation(segm: object, w: float, h: float) -> tuple[list[np.ndarray], str]:
    """One annotation's ``segmentation`` as polygons (float32 [2K] each, clamped to the w x h
    image) and a problem text ("" if none).

    Polygon lists keep their polygons with >= 3 vertices and non-zero area; an RLE dict (a
    non-crowd mask) is decoded with pycocotools and traced with cv2.findContours (outer
    contours, pixel corners: a pixel (i, j) covers [j, j+1) x [i, i+1)).
    """
    polys: list[np.ndarray] = []
    if isinstance(segm, list):
        for item in segm:
            try:
                poly = np.asarray(item, np.float32).reshape(-1)
            except (TypeError, ValueError):
                continue
            if len(poly) < 6 or len(poly) % 2 or not np.all(np.isfinite(poly)):
                continue
            poly[0::2] = np.clip(poly[0::2], 0, w)
            poly[1::2] = np.clip(poly[1::2], 0, h)
            if polygon_area(poly) > 0:
                polys.append(poly)
        return polys, "" if polys else "empty or degenerate segmentation"
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        from pycocotools import mask as mask_utils

        try:
            rle = segm
            if isinstance(segm["counts"], list):
                rle = mask_utils.frPyObjects(segm, *segm["size"])
            mask = mask_utils.decode(rle)
        except Exception:
            return [], "undecodable RLE segmentation"
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        for contour in contours:
            poly = contour.reshape(-1).astype(np.float32) + 0.5  # pixel centres
            if len(poly) >= 6 and polygon_area(poly) > 0:
                polys.append(poly)
        return polys, "" if polys else "empty RLE segmentation"
    return [], "no segmentation"


@register("dataset")
class COCODataSet(DetDataset):
    """Images listed in a COCO ``instances_*.json``.

    Args:
        dataset_dir: root directory; ``image_dir`` and ``anno_path`` are relative to it.
        image_dir: folder of the images (``file_name`` of each image is relative to it).
        anno_path: the COCO json.
        allow_empty, empty_ratio, drop_crowd: see DetDataset.
        load_segm: also load each object's ``segmentation`` as ``gt_poly`` (instance masks):
            a list with one item per box, the object's polygons as float32 [2K] arrays.

    Category ids (possibly non-contiguous, e.g. 1, 3, 7) map in ascending order to class ids
    0..C-1: ``catid2clsid``, ``clsid2catid``; ``label_list`` holds the names. Boxes [x, y, w, h]
    become x1y1x2y2. Bad entries are skipped with one warning line each (missing image file,
    malformed or zero-area box, unknown category, box outside the image); boxes sticking out
    are clipped. ``im_id`` is the COCO image id.

    With ``load_segm``: crowd objects keep their box and get no polygons (an RLE crowd region is
    not a polygon; crowd boxes are left out of training samples anyway); a non-crowd RLE mask is
    traced into polygons with cv2.findContours; a non-crowd object without a usable polygon
    (missing, empty, < 3 points, zero area) is dropped, box too, with the image's warning line.
    """

    kind = "coco"

    def __init__(
        self,
        dataset_dir: str = "",
        image_dir: str = "",
        anno_path: str = "",
        allow_empty: bool = True,
        empty_ratio: float = 1.0,
        drop_crowd: bool | None = None,
        load_segm: bool = False,
    ) -> None:
        super().__init__(dataset_dir, image_dir, anno_path, allow_empty, empty_ratio, drop_crowd)
        self.load_segm = load_segm
        if not anno_path:
            raise ValueError("COCODataSet needs anno_path")
        anno_file = require_file(self.get_anno(), "COCO annotation file", kind=self.kind)
        image_root = require_dir(self.path(image_dir), "COCO image folder", kind=self.kind)
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
            try:
                h, w = image_size(im_file)
            except ImageDecodeError as e:
                log.warn(f"{e} (no width/height in {source}); skipped")
                return None
        boxes, classes, crowd, polys, problems = [], [], [], [], []
        for ann in anns.get(image["id"], []):
            bbox, cat = ann.get("bbox"), ann.get("category_id")
            if not _is_box(bbox):
                problems.append(("dropped", "malformed bbox"))
            elif cat not in self.catid2clsid:
                problems.append(("dropped", f"unknown category_id {cat!r}"))
            else:
                is_crowd = 1 if ann.get("iscrowd", 0) else 0
                if self.load_segm:
                    obj_polys: list[np.ndarray] = []
                    if not is_crowd or isinstance(ann.get("segmentation"), list):
                        obj_polys, problem = parse_segmentation(ann.get("segmentation"), w, h)
                        if problem and not is_crowd:
                            reason = f"{problem}, annotation id {ann.get('id')}"
                            problems.append(("dropped", reason))
                            continue
                    polys.append(obj_polys)
                x, y, bw, bh = (float(v) for v in bbox)
                boxes.append([x, y, x + bw, y + bh])
                classes.append(self.catid2clsid[cat])
                crowd.append(is_crowd)
        box_array, keep, box_problems = clean_boxes(
            np.array(boxes, np.float32).reshape(-1, 4), w, h
        )
        problems += box_problems
        if problems:
            log.warn(f"{im_file}: {describe(problems)} [{source}]")
        record = make_record(
            im_file,
            im_id,
            h,
            w,
            box_array[keep],
            np.array(classes, np.int32)[keep],
            np.array(crowd, np.int32)[keep],
        )
        if self.load_segm:
            record["gt_poly"] = [p for p, k in zip(polys, keep.tolist(), strict=True) if k]
        return record
