"""Images for inference: files and folders, no annotations (class names from a json or list)."""

from __future__ import annotations

import os

import numpy as np

from ppdet.config.registry import register
from ppdet.data.errors import DatasetError

from .base import DetDataset, require_file
from .coco import coco_categories, load_coco_json
from .voc import read_label_list

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@register("dataset")
class ImageFolder(DetDataset):
    """Images to run a model on.

    Args:
        dataset_dir: root for ``image_dir`` and ``anno_path``.
        image_dir: a folder whose images are used when ``images`` is not given.
        anno_path: a COCO json (class names and category ids) or a label list file (names,
            category id = class id); optional.
        images: image files or folders (taken as given, not relative to ``dataset_dir``).

    Records hold ``im_file``, ``im_id`` (index) and ``h = w = 0``: ``Decode`` sets the size.
    Tools call ``set_images`` to choose the images after building the dataset.
    """

    def __init__(
        self,
        dataset_dir: str = "",
        image_dir: str = "",
        anno_path: str | None = None,
        images: list[str] | None = None,
    ) -> None:
        super().__init__(dataset_dir, image_dir, anno_path or "")
        if anno_path:
            path = require_file(self.get_anno(), "label file")
            if path.endswith(".json"):
                self.catid2clsid, self.clsid2catid, self.label_list = coco_categories(
                    load_coco_json(path), path
                )
            else:
                self.label_list = read_label_list(path)
                self.catid2clsid = {i: i for i in range(len(self.label_list))}
                self.clsid2catid = dict(self.catid2clsid)
        if images:
            self.set_images(images)
        elif image_dir:
            self.set_images([self.path(image_dir)])

    def set_images(self, images: list[str]) -> None:
        """Use these image files; a folder contributes its image files in name order."""
        files = []
        for path in images:
            if os.path.isdir(path):
                names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTS))
                files += [os.path.join(path, n) for n in names]
            elif os.path.isfile(path):
                files.append(path)
            else:
                raise FileNotFoundError(f"image or folder not found: {path}")
        if not files:
            raise DatasetError(f"no image files in {', '.join(images)}")
        self.records = [
            {"im_file": f, "im_id": np.array([i], np.int64), "h": 0, "w": 0}
            for i, f in enumerate(files)
        ]
