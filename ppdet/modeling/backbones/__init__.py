from . import darknet, efficientnet, mobilenet_v1, mobilenet_v3, resnet, senet, vgg  # noqa: F401
from .darknet import DarkNet  # noqa: F401
from .efficientnet import EfficientNet  # noqa: F401
from .mobilenet_v1 import MobileNet  # noqa: F401
from .mobilenet_v3 import MobileNetV3  # noqa: F401
from .resnet import ResNet  # noqa: F401
from .senet import SENet  # noqa: F401
from .vgg import VGG  # noqa: F401
