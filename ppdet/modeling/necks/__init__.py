from . import yolo_fpn  # noqa: F401
from .bifpn import BiFPN  # noqa: F401
from .fpn import FPN  # noqa: F401
from .pconv import PConvFPN  # noqa: F401
from .two_way_fpn import TwoWayFPN  # noqa: F401
from .yolo_fpn import YOLOv3FPN  # noqa: F401
