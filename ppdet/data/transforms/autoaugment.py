"""AutoAugment for detection (Zoph et al. 2019, "Learning Data Augmentation Strategies for
Object Detection"): the learned sub-policies and their operations, with boxes moving with the
image.

A policy is a list of sub-policies; ``AutoAugment`` draws one sub-policy per image and applies
its 2-3 operations in order, each with its probability. An operation has a magnitude ``level``
in 0..10 mapped to its argument as in the paper's reference implementation:

- colour (whole image): AutoContrast, Equalize, Posterize (bits = int(level/10 * 4)), Solarize
  (threshold = int(level/10 * 256)), SolarizeAdd (+int(level/10 * 110) below 128), Color,
  Contrast, Brightness, Sharpness (factor = level/10 * 1.8 + 0.1), Cutout (a grey square of
  side 2 * int(level/10 * 100) at a random centre).
- geometric (image and boxes): TranslateX_BBox / TranslateY_BBox (+-level/10 * 250 px),
  ShearX_BBox / ShearY_BBox (+-level/10 * 0.3), Rotate_BBox (+-level/10 * 30 degrees,
  counter-clockwise for +, about the image centre), BBox_Cutout (a grey rectangle of
  2 * int(level/10 * 0.75 * side / 2) inside a random box).
- box-only (inside each box, independently with probability prob / 3): Translate{X,Y},
  Shear{X,Y}, Rotate_Only_BBoxes (translation +-level/10 * 120 px), Flip_Only_BBoxes,
  Solarize_Only_BBoxes, Equalize_Only_BBoxes, Cutout_Only_BBoxes (side 2 * int(level/10 * 50)).

The sign of a geometric magnitude is random (50%). Geometric maps are exact affine maps of the
continuous pixel plane (pixel (i, j) covers [j, j+1) x [i, i+1)): the image is resampled with
nearest neighbours, empty pixels are grey (128); a box becomes the bounding box of its four
moved corners, clipped to the image; ``gt_poly`` polygons move by the same map and are
clipped; an object left with no area inside the image is dropped from every gt field. Box-only
operations change the pixels inside the boxes and keep the boxes.

Differences from the reference: it works in normalised, truncated coordinates and keeps
degenerate boxes at a minimum size, where boxes here are exact and objects pushed out of the
image are dropped. Posterize with bits 0 (level < 2.5, as in policy v3) gives a black image,
as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from ppdet.config.registry import register

from .compose import BaseOperator
from .decode_resize import is_chw
from .gt_fields import POLY_KEY, clip_polygon, map_polys, select_gt

__all__ = ["OPERATIONS", "POLICIES", "AutoAugment", "AutoAugmentOp"]

MAX_LEVEL = 10.0
FILL = 128  # grey for pixels uncovered by a geometric map or cut out

# (operation, probability, level), one list per sub-policy; the paper's policies v0 (used for
# all its results) and v1-v3 (other good policies of the same search).
POLICIES: dict[str, list[list[tuple[str, float, int]]]] = {
    "v0": [
        [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)],
        [("TranslateY_Only_BBoxes", 0.2, 2), ("Cutout", 0.8, 8)],
        [("Sharpness", 0.0, 8), ("ShearX_BBox", 0.4, 0)],
        [("ShearY_BBox", 1.0, 2), ("TranslateY_Only_BBoxes", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("Color", 1.0, 6)],
    ],
    "v1": [
        [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)],
        [("TranslateY_Only_BBoxes", 0.2, 2), ("Cutout", 0.8, 8)],
        [("Sharpness", 0.0, 8), ("ShearX_BBox", 0.4, 0)],
        [("ShearY_BBox", 1.0, 2), ("TranslateY_Only_BBoxes", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("Color", 1.0, 6)],
        [("Color", 0.0, 0), ("ShearX_Only_BBoxes", 0.8, 4)],
        [("ShearY_Only_BBoxes", 0.8, 2), ("Flip_Only_BBoxes", 0.0, 10)],
        [("Equalize", 0.6, 10), ("TranslateX_BBox", 0.2, 2)],
        [("Color", 1.0, 10), ("TranslateY_Only_BBoxes", 0.4, 6)],
        [("Rotate_BBox", 0.8, 10), ("Contrast", 0.0, 10)],
        [("Cutout", 0.2, 2), ("Brightness", 0.8, 10)],
        [("Color", 1.0, 6), ("Equalize", 1.0, 2)],
        [("Cutout_Only_BBoxes", 0.4, 6), ("TranslateY_Only_BBoxes", 0.8, 2)],
        [("Color", 0.2, 8), ("Rotate_BBox", 0.8, 10)],
        [("Sharpness", 0.4, 4), ("TranslateY_Only_BBoxes", 0.0, 4)],
        [("Sharpness", 1.0, 4), ("SolarizeAdd", 0.4, 4)],
        [("Rotate_BBox", 1.0, 8), ("Sharpness", 0.2, 8)],
        [("ShearY_BBox", 0.6, 10), ("Equalize_Only_BBoxes", 0.6, 8)],
        [("ShearX_BBox", 0.2, 6), ("TranslateY_Only_BBoxes", 0.2, 10)],
        [("SolarizeAdd", 0.6, 8), ("Brightness", 0.8, 10)],
    ],
    "v2": [
        [("Color", 0.0, 6), ("Cutout", 0.6, 8), ("Sharpness", 0.4, 8)],
        [("Rotate_BBox", 0.4, 8), ("Sharpness", 0.4, 2), ("Rotate_BBox", 0.8, 10)],
        [("TranslateY_BBox", 1.0, 8), ("AutoContrast", 0.8, 2)],
        [("AutoContrast", 0.4, 6), ("ShearX_BBox", 0.8, 8), ("Brightness", 0.0, 10)],
        [("SolarizeAdd", 0.2, 6), ("Contrast", 0.0, 10), ("AutoContrast", 0.6, 0)],
        [("Cutout", 0.2, 0), ("Solarize", 0.8, 8), ("Color", 1.0, 4)],
        [("TranslateY_BBox", 0.0, 4), ("Equalize", 0.6, 8), ("Solarize", 0.0, 10)],
        [("TranslateY_BBox", 0.2, 2), ("ShearY_BBox", 0.8, 8), ("Rotate_BBox", 0.8, 8)],
        [("Cutout", 0.8, 8), ("Brightness", 0.8, 8), ("Cutout", 0.2, 2)],
        [("Color", 0.8, 4), ("TranslateY_BBox", 1.0, 6), ("Rotate_BBox", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("BBox_Cutout", 1.0, 4), ("Cutout", 0.2, 8)],
        [("Rotate_BBox", 0.0, 0), ("Equalize", 0.6, 6), ("ShearY_BBox", 0.6, 8)],
        [("Brightness", 0.8, 8), ("AutoContrast", 0.4, 2), ("Brightness", 0.2, 2)],
        [("TranslateY_BBox", 0.4, 8), ("Solarize", 0.4, 6), ("SolarizeAdd", 0.2, 10)],
        [("Contrast", 1.0, 10), ("SolarizeAdd", 0.2, 8), ("Equalize", 0.2, 4)],
    ],
    "v3": [
        [("Posterize", 0.8, 2), ("TranslateX_BBox", 1.0, 8)],
        [("BBox_Cutout", 0.2, 10), ("Sharpness", 1.0, 8)],
        [("Rotate_BBox", 0.6, 8), ("Rotate_BBox", 0.8, 10)],
        [("Equalize", 0.8, 10), ("AutoContrast", 0.2, 10)],
        [("SolarizeAdd", 0.2, 2), ("TranslateY_BBox", 0.2, 8)],
        [("Sharpness", 0.0, 2), ("Color", 0.4, 8)],
        [("Equalize", 1.0, 8), ("TranslateY_BBox", 1.0, 8)],
        [("Posterize", 0.6, 2), ("Rotate_BBox", 0.0, 10)],
        [("AutoContrast", 0.6, 0), ("Rotate_BBox", 1.0, 6)],
        [("Equalize", 0.0, 4), ("Cutout", 0.8, 10)],
        [("Brightness", 1.0, 2), ("TranslateY_BBox", 1.0, 6)],
        [("Contrast", 0.0, 2), ("ShearY_BBox", 0.8, 0)],
        [("AutoContrast", 0.8, 10), ("Contrast", 0.2, 10)],
        [("Rotate_BBox", 1.0, 10), ("Cutout", 1.0, 10)],
        [("SolarizeAdd", 0.8, 6), ("Equalize", 0.8, 8)],
    ],
}


# ---------------------------------------------------------------- colour operations (uint8 HWC)
def _blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    """degenerate + factor * (image - degenerate), clipped to 0..255 (factor > 1 extrapolates)."""
    out = degenerate.astype(np.float32) + factor * (image.astype(np.float32) - degenerate)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    """Luma (0.299 R + 0.587 G + 0.114 B) as a float32 [H, W] map."""
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def autocontrast(image: np.ndarray) -> np.ndarray:
    """Stretch each channel's [min, max] to [0, 255] (channels with min == max unchanged)."""
    out = image.copy()
    for c in range(image.shape[2]):
        lo, hi = float(image[..., c].min()), float(image[..., c].max())
        if hi > lo:
            scaled = (image[..., c].astype(np.float32) - lo) * (255.0 / (hi - lo))
            out[..., c] = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    return out


def equalize(image: np.ndarray) -> np.ndarray:
    """Per-channel histogram equalisation as PIL's ImageOps.equalize."""
    out = image.copy()
    for c in range(image.shape[2]):
        channel = image[..., c]
        hist = np.bincount(channel.reshape(-1), minlength=256)
        nonzero = hist[hist > 0]
        step = (int(nonzero.sum()) - int(nonzero[-1])) // 255
        if step == 0:
            continue
        lut = (np.cumsum(hist) + step // 2) // step
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255).astype(np.uint8)
        out[..., c] = lut[channel]
    return out


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
    """Keep the ``bits`` high bits of every value (0 bits: black)."""
    shift = 8 - bits
    return ((image.astype(np.int32) >> shift) << shift).astype(np.uint8)


def solarize(image: np.ndarray, threshold: int) -> np.ndarray:
    """Invert the values at or above ``threshold``."""
    return np.where(image < threshold, image, 255 - image).astype(np.uint8)


def solarize_add(image: np.ndarray, addition: int, threshold: int = 128) -> np.ndarray:
    """Add ``addition`` (clipped to 0..255) to the values below ``threshold``."""
    added = np.clip(image.astype(np.int32) + addition, 0, 255).astype(np.uint8)
    return np.where(image < threshold, added, image).astype(np.uint8)


def color(image: np.ndarray, factor: float) -> np.ndarray:
    """Saturation: blend with the grey image (0: grey, 1: unchanged)."""
    return _blend(np.repeat(_grey(image)[..., None], 3, axis=2), image, factor)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean grey level (0: flat grey, 1: unchanged)."""
    return _blend(np.full_like(image, np.round(_grey(image).mean()), np.float32), image, factor)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black (0: black, 1: unchanged)."""
    return _blend(np.zeros_like(image), image, factor)


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with PIL's smoothed image (kernel [[1,1,1],[1,5,1],[1,1,1]] / 13, borders kept)."""
    degenerate = image.astype(np.float32)
    if image.shape[0] > 2 and image.shape[1] > 2:
        kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
        smooth = cv2.filter2D(degenerate, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        degenerate[1:-1, 1:-1] = np.round(smooth[1:-1, 1:-1])
    return _blend(degenerate, image, factor)


def _square_mask(h: int, w: int, cy: int, cx: int, half_h: int, half_w: int) -> tuple:
    """Slices of the rectangle [cy - half_h, cy + half_h) x [cx - half_w, cx + half_w), clipped."""
    return (
        slice(max(0, cy - half_h), min(h, cy + half_h)),
        slice(max(0, cx - half_w), min(w, cx + half_w)),
    )


def cutout(image: np.ndarray, pad_size: int) -> np.ndarray:
    """A grey square of side 2 * pad_size centred at a uniformly random pixel (clipped)."""
    h, w = image.shape[:2]
    cy, cx = np.random.randint(0, h), np.random.randint(0, w)
    out = image.copy()
    out[_square_mask(h, w, cy, cx, pad_size, pad_size)] = FILL
    return out


# ---------------------------------------------------------------- geometric maps
def _translate(dx: float, dy: float, h: int, w: int) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy]], np.float64)


def _shear_x(level: float, h: int, w: int) -> np.ndarray:
    """Content point (x, y) -> (x - level * y, y): PIL's affine (1, level, 0, 0, 1, 0)."""
    return np.array([[1, -level, 0], [0, 1, 0]], np.float64)


def _shear_y(level: float, h: int, w: int) -> np.ndarray:
    """Content point (x, y) -> (x, y - level * x): PIL's affine (1, 0, 0, level, 1, 0)."""
    return np.array([[1, 0, 0], [-level, 1, 0]], np.float64)


def _rotate(degrees: float, h: int, w: int) -> np.ndarray:
    """Counter-clockwise (as displayed) by ``degrees`` about the image centre (w/2, h/2)."""
    t = math.radians(degrees)
    cos, sin = math.cos(t), math.sin(t)
    cx, cy = w / 2.0, h / 2.0
    return np.array(
        [[cos, sin, cx - cos * cx - sin * cy], [-sin, cos, cy + sin * cx - cos * cy]], np.float64
    )


def warp_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Resample ``image`` [H, W, C] so content at continuous point p moves to matrix @ [p, 1]
    (nearest neighbour, grey where nothing maps)."""
    h, w = image.shape[:2]
    # continuous coordinates are pixel-index coordinates + 0.5
    a, t = matrix[:, :2], matrix[:, 2]
    index_matrix = np.concatenate([a, (t + a @ [0.5, 0.5] - 0.5)[:, None]], axis=1)
    return cv2.warpAffine(
        image,
        index_matrix,
        (w, h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(FILL,) * 3,
    )


def _map_boxes(boxes: np.ndarray, matrix: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bounding boxes [M, 4] of the four moved corners of each box, clipped to the image."""
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], axis=0)  # [4, 2, M]
    moved = np.einsum("ij,cjm->cim", matrix[:, :2], corners) + matrix[:, 2][None, :, None]
    out = np.stack(
        [moved[:, 0].min(0), moved[:, 1].min(0), moved[:, 0].max(0), moved[:, 1].max(0)], axis=1
    )
    return np.clip(out, 0, [w, h, w, h]).astype(np.float32)


def apply_affine(sample: dict, matrix: np.ndarray) -> dict:
    """Move ``image``, ``gt_bbox`` and ``gt_poly`` of a sample by the continuous affine map
    ``matrix`` [2, 3]; objects left without area inside the image are dropped."""
    image = sample["image"]
    h, w = image.shape[:2]
    sample["image"] = warp_image(image, matrix)
    if "gt_bbox" not in sample or len(sample["gt_bbox"]) == 0:
        return sample
    boxes = _map_boxes(sample["gt_bbox"].astype(np.float64), matrix, h, w)
    sample["gt_bbox"] = boxes
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if POLY_KEY in sample:
        a, t = matrix[:, :2], matrix[:, 2]
        map_polys(
            sample,
            lambda xs, ys: (a[0, 0] * xs + a[0, 1] * ys + t[0], a[1, 0] * xs + a[1, 1] * ys + t[1]),
        )
        clipped = [
            [part for part in (clip_polygon(p, 0, 0, w, h) for p in obj) if len(part)]
            for obj in sample[POLY_KEY]
        ]
        had = np.array([len(obj) > 0 for obj in sample[POLY_KEY]], bool)
        sample[POLY_KEY] = clipped
        keep &= ~(had & np.array([len(obj) == 0 for obj in clipped], bool))
    if not keep.all():
        select_gt(sample, keep)
    return sample


# ---------------------------------------------------------------- operations
def _negate(value: float) -> float:
    """``value`` with a random sign (50%)."""
    return value if np.random.uniform() < 0.5 else -value


def _enhance(level: float) -> float:
    return level / MAX_LEVEL * 1.8 + 0.1


def _geometric(make: Callable[..., np.ndarray], scale: float, axis: str | None = None):
    """An image-and-boxes operation from a matrix builder and the magnitude of level 10."""

    def op(sample: dict, level: float, prob: float) -> dict:
        magnitude = _negate(level / MAX_LEVEL * scale)
        h, w = sample["image"].shape[:2]
        if axis == "x":
            matrix = make(magnitude, 0.0, h, w)
        elif axis == "y":
            matrix = make(0.0, magnitude, h, w)
        else:
            matrix = make(magnitude, h, w)
        return apply_affine(sample, matrix)

    return op


def _colour(fn: Callable[..., np.ndarray], arg: Callable[[float], tuple] = lambda level: ()):
    def op(sample: dict, level: float, prob: float) -> dict:
        sample["image"] = fn(sample["image"], *arg(level))
        return sample

    return op


def _box_region(box: np.ndarray, h: int, w: int) -> tuple[slice, slice] | None:
    """Integer pixel rows/columns covered by box [4] (x1 y1 x2 y2), or None if empty."""
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return None
    return slice(y1, y2), slice(x1, x2)


def _inside_boxes(fn: Callable[[np.ndarray, float], np.ndarray]):
    """A box-only operation: ``fn(crop, level)`` on each box's pixels with probability prob / 3
    (independently per box, in box order); the boxes are unchanged."""

    def op(sample: dict, level: float, prob: float) -> dict:
        boxes = sample.get("gt_bbox")
        if boxes is None or len(boxes) == 0:
            return sample
        image = sample["image"].copy()
        h, w = image.shape[:2]
        for box in boxes:
            if np.random.uniform() >= prob / 3.0:
                continue
            region = _box_region(box, h, w)
            if region is not None:
                image[region] = fn(image[region], level)
        sample["image"] = image
        return sample

    return op


def _crop_geometric(make: Callable[..., np.ndarray], scale: float, axis: str | None = None):
    """A geometric map applied to a box's pixels only (content moves inside the crop)."""

    def fn(crop: np.ndarray, level: float) -> np.ndarray:
        magnitude = _negate(level / MAX_LEVEL * scale)
        h, w = crop.shape[:2]
        if axis == "x":
            matrix = make(magnitude, 0.0, h, w)
        elif axis == "y":
            matrix = make(0.0, magnitude, h, w)
        else:
            matrix = make(magnitude, h, w)
        return warp_image(np.ascontiguousarray(crop), matrix)

    return fn


def _bbox_cutout(sample: dict, level: float, prob: float) -> dict:
    """A grey rectangle inside one random box: half-sides int(fraction * side / 2), fraction =
    level / 10 * 0.75, centred at a random pixel of the box."""
    boxes = sample.get("gt_bbox")
    if boxes is None or len(boxes) == 0:
        return sample
    image = sample["image"]
    h, w = image.shape[:2]
    region = _box_region(boxes[np.random.randint(len(boxes))], h, w)
    if region is None:
        return sample
    fraction = level / MAX_LEVEL * 0.75
    rows, cols = region
    half_h = int(fraction * (rows.stop - rows.start) / 2)
    half_w = int(fraction * (cols.stop - cols.start) / 2)
    cy, cx = np.random.randint(rows.start, rows.stop), np.random.randint(cols.start, cols.stop)
    out = image.copy()
    out[_square_mask(h, w, cy, cx, half_h, half_w)] = FILL
    sample["image"] = out
    return sample


# name -> op(sample, level, prob) -> sample; ``prob`` is used only by the box-only operations
# (their per-box probability prob / 3; the others are applied or not by the caller)
OPERATIONS: dict[str, Callable[[dict, float, float], dict]] = {
    "AutoContrast": _colour(autocontrast),
    "Equalize": _colour(equalize),
    "Posterize": _colour(posterize, lambda level: (int(level / MAX_LEVEL * 4),)),
    "Solarize": _colour(solarize, lambda level: (int(level / MAX_LEVEL * 256),)),
    "SolarizeAdd": _colour(solarize_add, lambda level: (int(level / MAX_LEVEL * 110),)),
    "Color": _colour(color, lambda level: (_enhance(level),)),
    "Contrast": _colour(contrast, lambda level: (_enhance(level),)),
    "Brightness": _colour(brightness, lambda level: (_enhance(level),)),
    "Sharpness": _colour(sharpness, lambda level: (_enhance(level),)),
    "Cutout": _colour(cutout, lambda level: (int(level / MAX_LEVEL * 100),)),
    "BBox_Cutout": _bbox_cutout,
    "TranslateX_BBox": _geometric(_translate, 250.0, "x"),
    "TranslateY_BBox": _geometric(_translate, 250.0, "y"),
    "ShearX_BBox": _geometric(_shear_x, 0.3),
    "ShearY_BBox": _geometric(_shear_y, 0.3),
    "Rotate_BBox": _geometric(_rotate, 30.0),
    "TranslateX_Only_BBoxes": _inside_boxes(_crop_geometric(_translate, 120.0, "x")),
    "TranslateY_Only_BBoxes": _inside_boxes(_crop_geometric(_translate, 120.0, "y")),
    "ShearX_Only_BBoxes": _inside_boxes(_crop_geometric(_shear_x, 0.3)),
    "ShearY_Only_BBoxes": _inside_boxes(_crop_geometric(_shear_y, 0.3)),
    "Rotate_Only_BBoxes": _inside_boxes(_crop_geometric(_rotate, 30.0)),
    "Flip_Only_BBoxes": _inside_boxes(lambda crop, level: crop[:, ::-1]),
    "Solarize_Only_BBoxes": _inside_boxes(
        lambda crop, level: solarize(crop, int(level / MAX_LEVEL * 256))
    ),
    "Equalize_Only_BBoxes": _inside_boxes(lambda crop, level: equalize(crop)),
    "Cutout_Only_BBoxes": _inside_boxes(
        lambda crop, level: cutout(crop, int(level / MAX_LEVEL * 50))
    ),
}
BOX_ONLY = frozenset(name for name in OPERATIONS if name.endswith("_Only_BBoxes"))


def _check_op(name: str, prob: float, level: float, where: str) -> None:
    if name not in OPERATIONS:
        raise ValueError(f"{where}: unknown operation {name!r} (known: {', '.join(OPERATIONS)})")
    if not 0.0 <= prob <= 1.0 or not 0.0 <= level <= MAX_LEVEL:
        raise ValueError(
            f"{where}: {name} needs prob in [0, 1] and level in [0, 10], got {prob}, {level}"
        )


def _as_uint8(sample: dict, where: str) -> np.dtype:
    """Make ``sample["image"]`` uint8 HWC (values 0..255); returns its original dtype."""
    image = sample["image"]
    if image.ndim != 3 or is_chw(image):
        raise ValueError(
            f"{where} needs an HWC image [H, W, 3] with values 0-255; put it before Permute"
        )
    dtype = image.dtype
    if dtype != np.uint8:
        sample["image"] = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return dtype


def _run(sample: dict, name: str, prob: float, level: float) -> dict:
    """One operation: applied with probability ``prob`` (box-only ones: per box, prob / 3)."""
    if name in BOX_ONLY:
        return OPERATIONS[name](sample, level, prob)
    if np.random.uniform() < prob:
        return OPERATIONS[name](sample, level, prob)
    return sample


@register("transform")
class AutoAugment(BaseOperator):
    """Apply one random sub-policy of the detection AutoAugment policy ``autoaug_type``.

    Args:
        autoaug_type: "v0" (the paper's policy), "v1", "v2" or "v3" (PaddleDetection's
            argument name; its default is v1).

    Requires: ``image`` [H, W, 3] with values 0-255 (before NormalizeImage/Permute; a float
    image is rounded to integers). Modifies: ``image`` (same dtype), ``gt_bbox`` and the other gt fields (objects pushed out of the
    image are dropped), ``gt_poly``. A sample without boxes gets the colour operations only
    as well (box operations have nothing to act on).
    """

    def __init__(self, autoaug_type: str = "v1") -> None:
        if autoaug_type not in POLICIES:
            raise ValueError(
                f"AutoAugment: autoaug_type must be one of {sorted(POLICIES)}, got {autoaug_type!r}"
            )
        self.autoaug_type = autoaug_type

    def __call__(self, sample: dict) -> dict:
        dtype = _as_uint8(sample, "AutoAugment")
        policy = POLICIES[self.autoaug_type]
        for name, prob, level in policy[np.random.randint(len(policy))]:
            sample = _run(sample, name, prob, level)
        sample["image"] = sample["image"].astype(dtype)
        return sample


@register("transform")
class AutoAugmentOp(BaseOperator):
    """One AutoAugment operation (see ``OPERATIONS``) with its probability and level, e.g.
    ``AutoAugmentOp: {op: Rotate_BBox, prob: 0.6, level: 10}``: for custom policies (a list of
    these in sample_transforms is one fixed sub-policy) and for tests.

    Requires / modifies: as ``AutoAugment``.
    """

    def __init__(self, op: str, prob: float = 1.0, level: float = 10.0) -> None:
        _check_op(op, float(prob), float(level), "AutoAugmentOp")
        self.op, self.prob, self.level = op, float(prob), float(level)

    def __call__(self, sample: dict) -> dict:
        dtype = _as_uint8(sample, "AutoAugmentOp")
        sample = _run(sample, self.op, self.prob, self.level)
        sample["image"] = sample["image"].astype(dtype)
        return sample


def _check_policies(policies: dict[str, Sequence]) -> None:
    for key, policy in policies.items():
        for sub in policy:
            for name, prob, level in sub:
                _check_op(name, prob, level, f"AutoAugment policy {key}")


_check_policies(POLICIES)
