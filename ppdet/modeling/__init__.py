"""Detection models. Importing this package registers every model component."""

from . import architectures, backbones, heads, layers, losses, necks, postprocess  # noqa: F401
