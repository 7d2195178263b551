from . import yolo_loss  # noqa: F401
from .focal_loss import FocalLoss, sigmoid_focal_loss  # noqa: F401
from .iou_loss import DIouLoss, GIoULoss, IoULoss, box_iou_loss  # noqa: F401
from .smooth_l1 import smooth_l1  # noqa: F401
from .ssd_loss import SSDLoss, mine_hard_negatives, ssd_match  # noqa: F401
from .yolo_loss import YOLOv3Loss  # noqa: F401
