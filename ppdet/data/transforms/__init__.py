"""Sample and batch transforms; importing this package registers them all."""

from ppdet.data.image_io import read_image

from .augment import Mixup, RandomCrop, RandomDistort, RandomExpand, RandomFlip
from .autoaugment import AutoAugment, AutoAugmentOp
from .batch_ops import BatchRandomResize, PadBatch, PadGT
from .compose import BaseOperator, BatchCompose, BatchOperator, Compose
from .decode_resize import Decode, Resize
from .gt_fields import GT_FIELDS, select_gt
from .legacy_ops import PILResize, ScaleResize
from .normalize import NormalizeImage, Permute
from .random_resize import RandomResize
from .scaled_crop import RandomScaledCrop

__all__ = [
    "GT_FIELDS",
    "AutoAugment",
    "AutoAugmentOp",
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
    "RandomFlip",
    "ScaleResize",
    "RandomResize",
    "RandomScaledCrop",
    "Resize",
    "read_image",
    "select_gt",
]
