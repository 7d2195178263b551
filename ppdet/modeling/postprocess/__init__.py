from . import yolo  # noqa: F401
from .mask import MaskPostProcess, paste_masks  # noqa: F401
from .rcnn import RCNNBox, rcnn_post_process  # noqa: F401
from .retina import flatten_level, retina_decode  # noqa: F401
from .ssd import SSDBox  # noqa: F401
from .yolo import BBoxPostProcess, MultiClassNMS, YOLOBox  # noqa: F401
