"""Pascal VOC-format detection dataset: a list file, XML annotations, a label list."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from ppdet.config.registry import register
from ppdet.data.errors import ImageDecodeError
from ppdet.data.image_io import image_size
from ppdet.data.labels import VOC_CLASSES, read_label_list

from .base import BadInputLog, DetDataset, clean_boxes, describe, make_record, require_file


def _size(root: ET.Element) -> tuple[int, int] | None:
    try:
        w = int(float(root.findtext("size/width", "")))
        h = int(float(root.findtext("size/height", "")))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def _object(obj: ET.Element, name2id: dict[str, int]) -> tuple[list[float], int, int] | str:
    """(box, class id, difficult) of one <object>, or the reason it is unusable."""
    name = (obj.findtext("name") or "").strip()
    if name not in name2id:
        return f"unknown class {name!r}"
    try:
        box = [float(obj.findtext(f"bndbox/{k}", "")) for k in ("xmin", "ymin", "xmax", "ymax")]
        difficult = int(float(obj.findtext("difficult", "0") or 0))
    except ValueError:
        return "malformed bndbox"
    return box, name2id[name], 1 if difficult else 0


@register("dataset")
class VOCDataSet(DetDataset):
    """Images listed in a VOC list file, with one XML annotation each.

    Args:
        dataset_dir: root directory; other paths are relative to it.
        image_dir: folder of the images for id-only list lines.
        anno_path: the list file. Each line is either an image id (``ImageSets/Main/train.txt``
            style: image ``{image_dir}/{id}.jpg``, annotation ``Annotations/{id}.xml``) or
            ``<image path> <xml path>`` (PaddleDetection style).
        label_list: file of class names, one per line (class id = line index); None uses the
            20 Pascal VOC classes.
        allow_empty, empty_ratio, drop_crowd: see DetDataset.

    Box coordinates are read as written (x1y1x2y2 pixels); ``difficult`` is kept per box.
    ``im_id`` is the line index. Bad entries (missing image or XML, malformed XML, unknown
    class, degenerate box) are skipped with one warning line each.
    """

    kind = "voc"

    def __init__(
        self,
        dataset_dir: str = "",
        image_dir: str = "JPEGImages",
        anno_path: str = "",
        label_list: str | None = None,
        allow_empty: bool = True,
        empty_ratio: float = 1.0,
        drop_crowd: bool | None = None,
    ) -> None:
        super().__init__(dataset_dir, image_dir, anno_path, allow_empty, empty_ratio, drop_crowd)
        if not anno_path:
            raise ValueError("VOCDataSet needs anno_path (a list file)")
        list_file = require_file(self.get_anno(), "VOC list file", kind=self.kind)
        if label_list:
            self.label_list = read_label_list(
                require_file(self.path(label_list), "VOC label list", kind=self.kind)
            )
        else:
            self.label_list = list(VOC_CLASSES)
        self.catid2clsid = {i: i for i in range(len(self.label_list))}
        self.clsid2catid = dict(self.catid2clsid)
        name2id = {name: i for i, name in enumerate(self.label_list)}
        with open(list_file, encoding="utf-8") as f:
            lines = [line.split() for line in f]
        log = BadInputLog()
        records = []
        for im_id, parts in enumerate(lines):
            if not parts:
                continue
            if len(parts) == 1:
                im_file = self.path(image_dir, f"{parts[0]}.jpg")
                xml_file = self.path("Annotations", f"{parts[0]}.xml")
            else:
                im_file, xml_file = self.path(parts[0]), self.path(parts[1])
            record = self._parse(im_id, im_file, xml_file, name2id, log)
            if record is not None:
                records.append(record)
        log.finish(list_file)
        self.records = self.finish_records(records, list_file)

    def _parse(
        self, im_id: int, im_file: str, xml_file: str, name2id: dict[str, int], log: BadInputLog
    ) -> dict | None:
        if not os.path.isfile(xml_file):
            log.warn(f"{xml_file}: annotation file not found; skipped")
            return None
        if not os.path.isfile(im_file):
            log.warn(f"{im_file}: image file not found; skipped")
            return None
        try:
            root = ET.parse(xml_file).getroot()
        except ET.ParseError as e:
            log.warn(f"{xml_file}: malformed XML ({e}); skipped")
            return None
        size = _size(root)
        if size is None:
            try:
                h, w = image_size(im_file)
            except ImageDecodeError as e:
                log.warn(f"{e} (and no <size> in {xml_file}); skipped")
                return None
            size = w, h
        boxes, classes, difficult, problems = [], [], [], []
        for obj in root.findall("object"):
            parsed = _object(obj, name2id)
            if isinstance(parsed, str):
                problems.append(("dropped", parsed))
                continue
            boxes.append(parsed[0])
            classes.append(parsed[1])
            difficult.append(parsed[2])
        box_array, keep, box_problems = clean_boxes(
            np.array(boxes, np.float32).reshape(-1, 4), *size
        )
        problems += box_problems
        if problems:
            log.warn(f"{xml_file}: {describe(problems)}")
        return make_record(
            im_file,
            im_id,
            size[1],
            size[0],
            box_array[keep],
            np.array(classes, np.int32)[keep],
            None,
            np.array(difficult, np.int32)[keep],
        )
