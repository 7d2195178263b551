from . import (  # noqa: F401  (Faster R-CNN: RPNHead, BBoxHead, TwoFCHead, Res5Head)
    bbox_head,
    cascade_head,  # noqa: F401  (Cascade R-CNN: CascadeHead, CascadeTwoFCHead)
    mask_head,  # noqa: F401  (Mask R-CNN: MaskHead, MaskFeat)
    rpn_head,
    yolo_head,  # noqa: F401
)
from .efficientdet_head import EfficientDetFeat, EfficientDetHead  # noqa: F401
from .retina_head import RetinaFeat, RetinaHead  # noqa: F401
from .ssd_head import SSDHead  # noqa: F401
from .yolo_head import YOLOv3Head  # noqa: F401
