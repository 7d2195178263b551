from . import yolo  # noqa: F401
from .yolo import BBoxPostProcess, MultiClassNMS, YOLOBox  # noqa: F401
