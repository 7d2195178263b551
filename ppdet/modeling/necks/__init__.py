from . import yolo_fpn  # noqa: F401
from .fpn import FPN  # noqa: F401
from .yolo_fpn import YOLOv3FPN  # noqa: F401
