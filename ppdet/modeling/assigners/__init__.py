"""Target assigners: which ground-truth box each anchor (or proposal) learns from. Pure
geometry, no parameters."""

from .mask_target import MaskAssigner, polygons_to_mask  # noqa: F401
from .max_iou import MaxIoUAssigner, max_iou_assign  # noqa: F401
from .sampler import BBoxAssigner, subsample_labels  # noqa: F401
