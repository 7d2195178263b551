"""Sample and batch transforms; importing this package registers them all."""

from .augment import Mixup, RandomCrop, RandomDistort, RandomExpand, RandomFlip
from .batch_ops import BatchRandomResize, PadBatch, PadGT
from .compose import BaseOperator, BatchCompose, BatchOperator, Compose
from .decode_resize import Decode, Resize, read_image
from .gt_fields import GT_FIELDS, select_gt
from .legacy_ops import PILResize, RGBToBGR
from .normalize import NormalizeImage, Permute

__all__ = [
    "GT_FIELDS",
    "BaseOperator",
    "BatchCompose",
    "BatchOperator",
    "BatchRandomResize",
    "Compose",
    "Decode",
    "Mixup",
    "PILResize",
    "NormalizeImage",
    "PadBatch",
    "PadGT",
    "Permute",
    "RandomCrop",
    "RandomDistort",
    "RandomExpand",
    "RGBToBGR",
    "RandomFlip",
    "Resize",
    "read_image",
    "select_gt",
]
