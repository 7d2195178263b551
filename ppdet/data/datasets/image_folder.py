"""Images for inference: files and folders, no annotations."""

from __future__ import annotations

import os

import numpy as np

from ppdet.config.registry import register
from ppdet.data.errors import DataNotFoundError, DatasetError
from ppdet.data.image_io import list_image_files

from .base import DetDataset


@register("dataset")
class ImageFolder(DetDataset):
    """Images to run a model on.

    Args:
        dataset_dir: root for ``image_dir`` and ``anno_path``.
        image_dir: a folder whose images are used when ``images`` is not given.
        anno_path: a COCO json or a label list that names the classes. Optional, and only read
            when it exists: ``ppdet.data.labels.resolve_labels`` decides where inference takes
            its class names from (the weights first).
        images: image files or folders (taken as given, not relative to ``dataset_dir``).

    Records hold ``im_file``, ``im_id`` (index) and ``h = w = 0``: ``Decode`` sets the size.
    Tools call ``set_images`` to choose the images after building the dataset. A folder
    contributes every entry named like an image (``image_io.IMAGE_EXTS``); one that cannot be
    read is skipped with a warning when the loader gets to it.
    """

    def __init__(
        self,
        dataset_dir: str = "",
        image_dir: str = "",
        anno_path: str | None = None,
        images: list[str] | None = None,
    ) -> None:
        super().__init__(dataset_dir, image_dir, anno_path or "")
        if images:
            self.set_images(images)
        elif image_dir:
            self.set_images([self.path(image_dir)])

    def set_images(self, images: list[str]) -> None:
        """Use these image files; a folder contributes its image files in name order."""
        files = []
        for path in images:
            if os.path.isdir(path):
                files += list_image_files(path)
            elif os.path.lexists(path):
                files.append(path)
            else:
                raise DataNotFoundError(f"image or folder not found: {path}")
        if not files:
            raise DatasetError(f"no image files in {', '.join(images)}")
        self.set_files(files)

    def set_files(self, files: list[str]) -> None:
        """Use exactly these paths, in this order (nothing is expanded: a folder named like an
        image is an unreadable image, skipped with a warning when the loader gets to it)."""
        self.records = [
            {"im_file": f, "im_id": np.array([i], np.int64), "h": 0, "w": 0}
            for i, f in enumerate(files)
        ]
