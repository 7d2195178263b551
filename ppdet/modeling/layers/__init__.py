from . import conv_norm  # noqa: F401
from .conv_norm import ConvNormLayer, MobileConvNormLayer  # noqa: F401
