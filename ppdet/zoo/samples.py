"""The bundled sample images that behaviour fingerprints are computed on.

Three small images (coloured circles, squares, triangles and crosses, the demo set's classes,
on gradient backgrounds with noise), drawn here with integer numpy arithmetic and numpy's
frozen ``RandomState`` stream, so they are the same pixels on every machine and in an
installed wheel, with no data files. :func:`pixel_sha256` identifies an image's pixels (not
its PNG encoding); a fingerprint records it so a change of the samples is told apart from a
change of the model.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

__all__ = ["SAMPLES_VERSION", "pixel_sha256", "sample_images", "write_samples"]

SAMPLES_VERSION = 1

# (name, height, width, seed, background colours (BGR) top/bottom, shapes)
# shape: (kind, x, y, size, colour BGR); kind: circle | square | triangle | cross
_SPECS = (
    (
        "sample_0.png",
        120,
        160,
        11,
        ((40, 60, 90), (200, 190, 170)),
        (
            ("circle", 14, 18, 44, (30, 30, 220)),
            ("square", 84, 26, 40, (220, 120, 20)),
            ("triangle", 40, 70, 42, (40, 200, 40)),
        ),
    ),
    (
        "sample_1.png",
        128,
        128,
        12,
        ((180, 200, 210), (60, 40, 30)),
        (
            ("cross", 10, 12, 50, (200, 30, 160)),
            ("circle", 70, 66, 48, (20, 220, 230)),
            ("square", 74, 8, 30, (40, 40, 40)),
        ),
    ),
    (
        "sample_2.png",
        144,
        96,
        13,
        ((90, 140, 60), (30, 50, 120)),
        (
            ("triangle", 8, 10, 56, (240, 240, 240)),
            ("cross", 30, 80, 52, (10, 140, 250)),
        ),
    ),
)


def _shape_mask(kind: str, h: int, w: int, x: int, y: int, size: int) -> np.ndarray:
    """bool [h, w]: the shape inside the square of side ``size`` at (x, y), integer geometry."""
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "circle":
        r = size // 2
        return (2 * xx - (2 * x + size)) ** 2 + (2 * yy - (2 * y + size)) ** 2 < (2 * r) ** 2
    inside = (xx >= x) & (xx < x + size) & (yy >= y) & (yy < y + size)
    if kind == "square":
        return inside
    if kind == "triangle":  # apex at the top centre, the base the square's bottom side
        dx, dy = 2 * (xx - x) - size, yy - y  # dx: twice the distance from the centre column
        return inside & (np.abs(dx) <= dy)
    bar = max(size // 6, 2)  # cross: a horizontal and a vertical bar through the centre
    cx, cy = x + size // 2, y + size // 2
    return inside & ((np.abs(yy - cy) <= bar) | (np.abs(xx - cx) <= bar))


def _draw(h: int, w: int, seed: int, colours, shapes) -> np.ndarray:
    top, bottom = (np.array(c, np.int64) for c in colours)
    rows = np.arange(h, dtype=np.int64)[:, None, None]  # [h, 1, 1]
    image = (top * (h - 1 - rows) + bottom * rows) // max(h - 1, 1)  # [h, 1, 3] gradient
    image = np.broadcast_to(image, (h, w, 3)).copy()
    for kind, x, y, size, colour in shapes:
        image[_shape_mask(kind, h, w, x, y, size)] = colour
    noise = np.random.RandomState(seed).randint(-12, 13, size=(h, w, 3))
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def sample_images() -> list[tuple[str, np.ndarray]]:
    """``[(file name, uint8 [H, W, 3] BGR image)]`` in a fixed order."""
    return [
        (name, _draw(h, w, seed, colours, shapes)) for name, h, w, seed, colours, shapes in _SPECS
    ]


def pixel_sha256(image: np.ndarray) -> str:
    """sha256 over an image's shape and pixel bytes (independent of the file encoding)."""
    digest = hashlib.sha256(repr(tuple(image.shape)).encode())
    digest.update(np.ascontiguousarray(image, np.uint8).tobytes())
    return digest.hexdigest()


def write_samples(folder: str) -> list[str]:
    """Write the samples as lossless PNGs into ``folder``; return their paths (fixed order)."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, image in sample_images():
        path = os.path.join(folder, name)
        if not cv2.imwrite(path, image):
            raise OSError(f"cannot write the sample image {path}")
        paths.append(path)
    return paths
