"""Detection datasets; importing this package registers them."""

from .base import DetDataset, make_record
from .coco import COCODataSet
from .image_folder import ImageFolder
from .voc import VOCDataSet

__all__ = ["COCODataSet", "DetDataset", "ImageFolder", "VOCDataSet", "make_record"]
