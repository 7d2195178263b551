from . import conv_norm, norms  # noqa: F401
from .conv_norm import ConvNorm, ConvNormLayer, MobileConvNormLayer  # noqa: F401
