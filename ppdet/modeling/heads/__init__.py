from . import yolo_head  # noqa: F401
from .yolo_head import YOLOv3Head  # noqa: F401
from .retina_head import RetinaFeat, RetinaHead  # noqa: F401
from .ssd_head import SSDHead  # noqa: F401
from . import bbox_head, rpn_head  # noqa: F401  (Faster R-CNN: RPNHead, BBoxHead, TwoFCHead, Res5Head)
from . import cascade_head  # noqa: F401  (Cascade R-CNN: CascadeHead, CascadeTwoFCHead)
from . import mask_head  # noqa: F401  (Mask R-CNN: MaskHead, MaskFeat)
