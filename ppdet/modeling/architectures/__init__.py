"""Architectures: each a ``Detector`` (forward -> raw, loss, postprocess)."""

from .base import Detector  # noqa: F401
from .retinanet import RetinaNet  # noqa: F401
from .ssd import SSD  # noqa: F401
from .two_stage import CascadeRCNN, FasterRCNN, MaskRCNN, TwoStageDetector  # noqa: F401
from .yolov3 import YOLOv3  # noqa: F401
