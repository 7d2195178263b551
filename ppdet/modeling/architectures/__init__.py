from . import yolov3  # noqa: F401
from .cascade_rcnn import CascadeRCNN  # noqa: F401
from .faster_rcnn import FasterRCNN  # noqa: F401
from .mask_rcnn import MaskRCNN  # noqa: F401
from .retinanet import RetinaNet  # noqa: F401
from .ssd import SSD  # noqa: F401
from .yolov3 import YOLOv3  # noqa: F401
