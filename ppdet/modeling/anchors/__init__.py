"""Anchor and prior-box generators: pure geometry, no parameters."""

from .anchor_generator import (  # noqa: F401
    AnchorGenerator,
    RetinaAnchorGenerator,
    cell_anchors,
    fluid_cell_anchors,
    grid_anchors,
    grid_size,
    wh_cell_anchors,
)
from .prior_box import AnchorGeneratorSSD  # noqa: F401
