"""Detection models. Importing this package registers every model component."""

from . import anchors, architectures, assigners, backbones, coders, heads, layers, losses, necks, postprocess  # noqa: F401
