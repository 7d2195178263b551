"""Detection models. Importing this package registers every model component."""

from . import (  # noqa: F401
    anchors,
    architectures,
    assigners,
    backbones,
    coders,
    heads,
    layers,
    losses,
    necks,
    postprocess,
)
