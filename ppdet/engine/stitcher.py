"""Stitcher (Chen et al. 2020, "Stitcher: Feedback-driven Data Provider for Object
Detection"): when small objects contribute too little to the box-regression loss of an
iteration, the next batch is made of mosaics of downscaled images, which are full of small
objects.

Two parts, both independent of any architecture:

- ``losses_by_scale(per_box_loss, areas)`` (``ppdet/modeling/losses/by_scale.py``): a head's regression loss of its positive samples
  summed by the area of their ground-truth boxes (COCO's bounds, in input pixels: small
  < 32^2 <= medium < 96^2 <= large). A head that supports stitching returns it in training
  as ``outputs["reg_loss_by_scale"]`` (a dict of detached scalar tensors).
- ``Stitcher``: the switching rule and the mosaic, consulted by the trainer through two hooks:

      batch = stitcher.before_batch(batch)        # before the forward pass
      stitcher.after_step(losses_by_scale)        # after it, with that iteration's split

  After a step whose small-object share small / (small + medium + large) is below
  ``threshold`` (0.1 in the paper), the next batch is stitched (``stitch_batch``); otherwise
  it is used as loaded. A step without any regression loss (no positives) gives no feedback
  and the next batch is regular.

``stitch_batch`` keeps the batch's tensor shapes' meaning (B images of H x W): mosaic i puts,
row by row, images i, i+1, ..., i+g^2-1 (mod B) of the batch, each downscaled to
(H // g) x (W // g) by area averaging, into a g x g grid (g = ``grid``, 2 in the paper); a
remaining odd row/column stays 0 (the padding value of normalised images). The paper loads
g^2 times more images for a stitched batch; here the batch's own B images are reused in g^2
arrangements (distinct images per mosaic when B >= g^2), so the loader, the batch size and
the learning rate stay unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import paddle
import paddle.nn.functional as F

from ppdet.modeling.losses.by_scale import MEDIUM_AREA, SMALL_AREA, losses_by_scale

# losses_by_scale and the areas are re-exported: they are what the hook reads
__all__ = ["MEDIUM_AREA", "SMALL_AREA", "Stitcher", "losses_by_scale", "stitch_batch"]

# per-box batch fields [B, M, k] (docs/contracts.md), moved row by row with the boxes
PER_BOX_FIELDS = ("gt_bbox", "gt_class", "gt_score", "is_crowd", "difficult", "pad_gt_mask")
PER_IMAGE_FIELDS = ("image", "im_shape", "scale_factor", "im_id")
POLY_FIELD = "gt_poly"


def _roll(x: paddle.Tensor, k: int) -> paddle.Tensor:
    """Row i of the result is row (i + k) mod B of x [B, ...]."""
    return paddle.roll(x, shifts=-k, axis=0) if k else x


def stitch_batch(batch: dict, grid: int = 2) -> dict:
    """The batch as B mosaics of grid x grid downscaled images (see the module docstring).

    batch: a collated training batch (docs/contracts.md): ``image`` [B, 3, H, W], ``im_shape``,
    ``scale_factor`` [B, 2], ``im_id`` [B, 1], per-box fields [B, M, k] (``gt_bbox`` x1y1x2y2
    pixels, ``gt_class``, ``gt_score``, ``is_crowd``, ``difficult``, ``pad_gt_mask``) and
    optionally ``gt_poly`` (B lists of objects' polygons).
    Returns a new dict: ``image`` [B, 3, H, W]; per-box fields [B, g^2 M, k], the real boxes
    of the g^2 sources first (source order, then their own order), then zero padding rows
    (``pad_gt_mask`` 0); boxes and polygons scaled by ((W // g) / W, (H // g) / H) and shifted
    to their cell; ``im_shape`` = (H, W); ``im_id`` and ``scale_factor`` those of the
    top-left image (its factor times the downscale: meaningful for that image only, and read
    by no training loss).
    """
    unknown = sorted(set(batch) - {*PER_BOX_FIELDS, *PER_IMAGE_FIELDS, POLY_FIELD})
    if unknown:
        raise ValueError(
            f"Stitcher: cannot rebuild the batch field(s) {unknown} for a mosaic; it moves only "
            f"{sorted({*PER_BOX_FIELDS, *PER_IMAGE_FIELDS, POLY_FIELD})}"
        )
    if grid < 2:
        raise ValueError(f"Stitcher: grid must be >= 2, got {grid}")
    image = batch["image"]  # [B, C, H, W]
    b, _, h, w = image.shape
    ch, cw = h // grid, w // grid
    if ch < 1 or cw < 1:
        raise ValueError(f"Stitcher: images of {h}x{w} are too small for a {grid}x{grid} mosaic")
    sy, sx = ch / h, cw / w
    small = F.interpolate(image, size=[ch, cw], mode="area")  # [B, C, ch, cw]
    rows = [
        paddle.concat([_roll(small, r * grid + c) for c in range(grid)], axis=3)  # [B,C,ch,g cw]
        for r in range(grid)
    ]
    mosaic = paddle.concat(rows, axis=2)  # [B, C, g ch, g cw]
    if (grid * ch, grid * cw) != (h, w):
        mosaic = F.pad(mosaic, [0, w - grid * cw, 0, h - grid * ch])  # zeros right / bottom
    out = {"image": mosaic}

    cells = [(k // grid, k % grid) for k in range(grid * grid)]  # (row, col) of source k
    if "gt_bbox" in batch:
        boxes = batch["gt_bbox"].astype("float32")  # [B, M, 4]
        mask = batch.get("pad_gt_mask")
        if mask is None:  # no padding information: every row is a real box
            mask = paddle.ones(boxes.shape[:2] + [1], "float32")
        scale = paddle.to_tensor([sx, sy, sx, sy], "float32")
        moved = {key: [] for key in PER_BOX_FIELDS if key in batch}
        moved["pad_gt_mask"] = []
        for k, (r, c) in enumerate(cells):
            shift = paddle.to_tensor([c * cw, r * ch, c * cw, r * ch], "float32")
            src_mask = _roll(mask.astype("float32"), k)  # [B, M, 1]
            moved["gt_bbox"].append((_roll(boxes, k) * scale + shift) * src_mask)
            moved["pad_gt_mask"].append(src_mask)
            for key in moved:
                if key not in ("gt_bbox", "pad_gt_mask"):
                    moved[key].append(_roll(batch[key], k))
        joined = {
            key: paddle.concat(parts, axis=1) for key, parts in moved.items()
        }  # [B, g^2 M, k]
        # real rows first, in (source, row) order: sort by (padding?, position)
        total = joined["pad_gt_mask"].shape[1]
        position = paddle.arange(total, dtype="float32").unsqueeze(0)  # [1, g^2 M]
        key = (1.0 - joined["pad_gt_mask"][..., 0]) * total + position  # [B, g^2 M]
        order = paddle.argsort(key, axis=1).unsqueeze(-1)  # [B, g^2 M, 1]
        for name, value in joined.items():
            index = paddle.expand(order, value.shape)
            out[name] = paddle.take_along_axis(value, index, axis=1).astype(
                batch.get(name, value).dtype
            )

    if "im_shape" in batch:
        out["im_shape"] = paddle.full_like(batch["im_shape"], 0.0) + paddle.to_tensor(
            [float(h), float(w)], batch["im_shape"].dtype
        )
    if "scale_factor" in batch:
        out["scale_factor"] = batch["scale_factor"] * paddle.to_tensor(
            [sy, sx], batch["scale_factor"].dtype
        )
    if "im_id" in batch:
        out["im_id"] = batch["im_id"]
    if POLY_FIELD in batch:
        polys = batch[POLY_FIELD]
        out[POLY_FIELD] = [
            [
                [_move_polygon(p, sx, sy, c * cw, r * ch) for p in obj]
                for k, (r, c) in enumerate(cells)
                for obj in polys[(i + k) % b]
            ]
            for i in range(b)
        ]
    return out


def _move_polygon(poly, sx: float, sy: float, dx: float, dy: float) -> np.ndarray:
    """A float32 [2K] polygon (x1, y1, ...) scaled by (sx, sy) then shifted by (dx, dy)."""
    moved = np.asarray(poly, np.float32).reshape(-1).copy()
    moved[0::2] = moved[0::2] * sx + dx
    moved[1::2] = moved[1::2] * sy + dy
    return moved


class Stitcher:
    """The feedback rule: stitch the next batch when small objects' share of the last
    regression loss is below ``threshold`` (see the module docstring for the hook calls).

    Args:
        threshold: stitch when small / (small + medium + large) < threshold (paper: 0.1).
        grid: mosaic of grid x grid images (paper: 2).

    Attributes: ``stitch_next`` (the decision for the next batch), ``last_share`` (the last
    small-object share, None before any feedback), ``num_stitched`` (stitched batches so far).
    ``state_dict()`` / ``set_state_dict()`` carry them across a resume.
    """

    def __init__(self, threshold: float = 0.1, grid: int = 2):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"Stitcher: threshold must be in [0, 1], got {threshold}")
        if grid < 2:
            raise ValueError(f"Stitcher: grid must be >= 2, got {grid}")
        self.threshold = float(threshold)
        self.grid = int(grid)
        self.stitch_next = False
        self.last_share: float | None = None
        self.num_stitched = 0

    def before_batch(self, batch: dict) -> dict:
        """The batch to train on: stitched when the last feedback asked for it, else as is."""
        if not self.stitch_next:
            return batch
        self.num_stitched += 1
        return stitch_batch(batch, self.grid)

    def after_step(self, losses_by_scale: Mapping[str, float | paddle.Tensor] | None) -> bool:
        """Record one iteration's regression loss by object size ({"small", "medium",
        "large"}: numbers or scalar tensors; other keys count toward the total) and decide
        the next batch. Returns ``stitch_next``."""
        if losses_by_scale is None:
            raise ValueError(
                "Stitcher: the model reported no regression loss by object size "
                "(outputs['reg_loss_by_scale']); its head does not support stitching"
            )
        values = {
            k: float(v.item() if hasattr(v, "item") else v) for k, v in losses_by_scale.items()
        }
        total = sum(values.values())
        if total <= 0.0:  # no positives: no feedback, regular data
            self.last_share, self.stitch_next = None, False
            return False
        self.last_share = values.get("small", 0.0) / total
        self.stitch_next = self.last_share < self.threshold
        return self.stitch_next

    def state_dict(self) -> dict:
        return {
            "stitch_next": self.stitch_next,
            "last_share": self.last_share,
            "num_stitched": self.num_stitched,
        }

    def set_state_dict(self, state: Mapping) -> None:
        self.stitch_next = bool(state.get("stitch_next", False))
        self.last_share = state.get("last_share")
        self.num_stitched = int(state.get("num_stitched", 0))
