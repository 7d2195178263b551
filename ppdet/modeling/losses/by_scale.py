"""A head's regression loss split by object size: the feedback the Stitcher
(``ppdet/engine/stitcher.py``) reads from a head that supports it
(``outputs["reg_loss_by_scale"]`` in training)."""

from __future__ import annotations

import paddle

__all__ = ["MEDIUM_AREA", "SMALL_AREA", "losses_by_scale"]

SMALL_AREA = 32.0**2  # COCO: small < 32^2 <= medium < 96^2 <= large (pixels^2)
MEDIUM_AREA = 96.0**2


def losses_by_scale(
    per_box_loss: paddle.Tensor,
    areas: paddle.Tensor,
    small_area: float = SMALL_AREA,
    medium_area: float = MEDIUM_AREA,
) -> dict[str, paddle.Tensor]:
    """Regression loss summed by object size.

    per_box_loss: [N] loss of each positive sample (e.g. per anchor); areas: [N] area in
    pixels^2 of the ground-truth box each sample regresses to. Returns {"small", "medium",
    "large"}: detached float32 scalar tensors (0 when no sample falls in a range).
    """
    loss = per_box_loss.detach().astype("float32").reshape([-1])
    areas = areas.detach().astype("float32").reshape([-1])
    small = (areas < small_area).astype("float32")
    large = (areas >= medium_area).astype("float32")
    medium = 1.0 - small - large
    return {
        "small": (loss * small).sum(),
        "medium": (loss * medium).sum(),
        "large": (loss * large).sum(),
    }
