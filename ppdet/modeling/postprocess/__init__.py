"""Post-processing: raw head outputs -> detections in original-image pixels (and masks)."""

from .bbox import BBoxPostProcess, MultiClassNMS, original_size, to_original_image  # noqa: F401
from .mask import MaskPostProcess, paste_masks  # noqa: F401
from .rcnn import RCNNBox  # noqa: F401
from .retina import (  # noqa: F401
    RetinaBox,
    RetinaNetDetectionOutput,
    flatten_level,
    fluid_retina_candidates,
    retina_decode,
)
from .ssd import SSDBox  # noqa: F401
from .yolo import YOLOBox  # noqa: F401
