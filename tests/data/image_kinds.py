"""Image files of every odd and every hostile kind, made on the spot (no fixtures on disk).

``PICTURE`` is a 24 x 32 RGB image of four flat quadrants (red, green / blue, white), so its
orientation and colours can be checked after any encoding. ``write_odd`` writes one file per odd
kind and returns what reading it must give; ``write_hostile`` writes one file per kind of input
that must be skipped.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

H, W = 24, 32
RED, GREEN, BLUE, WHITE = (230, 20, 20), (20, 200, 40), (30, 40, 220), (250, 250, 250)


def quadrants(h: int = H, w: int = W) -> np.ndarray:
    """uint8 RGB [h, w, 3]: top-left red, top-right green, bottom-left blue, bottom-right white."""
    image = np.empty((h, w, 3), np.uint8)
    image[: h // 2, : w // 2] = RED
    image[: h // 2, w // 2 :] = GREEN
    image[h // 2 :, : w // 2] = BLUE
    image[h // 2 :, w // 2 :] = WHITE
    return image


PICTURE = quadrants()


def quadrant_means(image: np.ndarray) -> np.ndarray:
    """Mean colour [4, 3] of the inner part of each quadrant (TL, TR, BL, BR), float."""
    h, w = image.shape[:2]
    mh, mw = h // 8, w // 8
    cells = [
        image[mh : h // 2 - mh, mw : w // 2 - mw],
        image[mh : h // 2 - mh, w // 2 + mw : w - mw],
        image[h // 2 + mh : h - mh, mw : w // 2 - mw],
        image[h // 2 + mh : h - mh, w // 2 + mw : w - mw],
    ]
    return np.array([c.reshape(-1, 3).mean(0) for c in cells])


def _pil_bytes(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _exif_jpeg(orientation: int) -> tuple[bytes, np.ndarray]:
    """A JPEG whose stored pixels must be turned by EXIF ``orientation`` to show PICTURE."""
    to_storage = {  # stored = inverse of the transform a viewer applies
        3: lambda a: np.rot90(a, 2),
        6: lambda a: np.rot90(a, 1),  # viewer turns 90 degrees clockwise
        8: lambda a: np.rot90(a, -1),  # viewer turns 90 degrees counter-clockwise
    }
    stored = np.ascontiguousarray(to_storage[orientation](PICTURE))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _pil_bytes(Image.fromarray(stored), "JPEG", quality=95, exif=exif), PICTURE


def odd_kinds() -> dict[str, tuple[bytes, np.ndarray, float]]:
    """name -> (file bytes, expected RGB uint8 [H, W, 3], tolerance per quadrant mean)."""
    grey = PICTURE.mean(2).round().astype(np.uint8)  # [H, W]
    grey3 = np.repeat(grey[:, :, None], 3, axis=2)
    kinds: dict[str, tuple[bytes, np.ndarray, float]] = {}

    ok, data = cv2.imencode(".png", grey.astype(np.uint16) * 257)  # 16-bit grey, full range
    kinds["grey16.png"] = (data.tobytes(), grey3, 0)
    rgb16 = PICTURE[:, :, ::-1].astype(np.uint16) * 256 + 37  # BGR for OpenCV; low bytes 37
    ok, data = cv2.imencode(".png", rgb16)
    kinds["rgb16.png"] = (data.tobytes(), PICTURE, 0)
    kinds["grey.jpg"] = (_pil_bytes(Image.fromarray(grey), "JPEG", quality=95), grey3, 4)
    kinds["bilevel.png"] = (
        _pil_bytes(Image.fromarray(grey > 128), "PNG"),
        np.repeat(np.where(grey > 128, 255, 0).astype(np.uint8)[:, :, None], 3, 2),
        0,
    )

    rgba = np.dstack([PICTURE, np.full((H, W), 255, np.uint8)])
    rgba[H // 2 :, : W // 2, 3] = 0  # the blue quadrant fully transparent: white is shown
    rgba[: H // 2, : W // 2, 3] = 128  # red half transparent over white
    over_white = PICTURE.astype(np.int64).copy()
    over_white[H // 2 :, : W // 2] = 255
    over_white[: H // 2, : W // 2] = (np.array(RED) * 128 + 255 * 127 + 127) // 255
    kinds["rgba.png"] = (_pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), over_white, 0)

    palette_index = np.zeros((H, W), np.uint8)
    palette_index[: H // 2, W // 2 :] = 1
    palette_index[H // 2 :, : W // 2] = 2
    palette_index[H // 2 :, W // 2 :] = 3
    palette = [*RED, *GREEN, *BLUE, *WHITE]
    pal = Image.fromarray(palette_index, "P")
    pal.putpalette(palette)
    kinds["palette.png"] = (_pil_bytes(pal, "PNG"), PICTURE, 0)
    kinds["palette.gif"] = (_pil_bytes(pal, "GIF"), PICTURE, 0)
    kinds["palette_transparent.png"] = (  # index 2 (blue) transparent: white is shown
        _pil_bytes(pal, "PNG", transparency=2),
        np.where(palette_index[:, :, None] == 2, 255, PICTURE).astype(np.uint8),
        0,
    )

    cmyk = Image.fromarray(PICTURE).convert("CMYK")
    kinds["cmyk.jpg"] = (_pil_bytes(cmyk, "JPEG", quality=95), PICTURE, 12)
    kinds["progressive.jpg"] = (
        _pil_bytes(Image.fromarray(PICTURE), "JPEG", quality=95, progressive=True),
        PICTURE,
        6,
    )
    for orientation in (3, 6, 8):
        data, expected = _exif_jpeg(orientation)
        kinds[f"exif_orientation_{orientation}.jpg"] = (data, expected, 6)
    png = _pil_bytes(Image.fromarray(PICTURE), "PNG")
    kinds["png_named.jpg"] = (png, PICTURE, 0)  # mislabelled extension
    kinds["UPPER.PNG"] = (png, PICTURE, 0)
    kinds["picture.bmp"] = (_pil_bytes(Image.fromarray(PICTURE), "BMP"), PICTURE, 0)
    kinds["picture.webp"] = (
        _pil_bytes(Image.fromarray(PICTURE), "WEBP", lossless=True),
        PICTURE,
        0,
    )
    kinds["picture.tif"] = (_pil_bytes(Image.fromarray(PICTURE), "TIFF"), PICTURE, 0)
    return kinds


def write_odd(folder: str) -> dict[str, tuple[np.ndarray, float]]:
    """Write every odd kind into ``folder``; name -> (expected RGB, tolerance)."""
    os.makedirs(folder, exist_ok=True)
    expected = {}
    for name, (data, image, tol) in odd_kinds().items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        expected[name] = (image, tol)
    return expected


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` RGB pixels, in a few hundred bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4096, 9))
        + _png_chunk(b"IEND", b"")
    )


def hostile_kinds() -> dict[str, bytes | None]:
    """name -> file bytes (None: a directory) of inputs that must be skipped, never decoded."""
    jpeg = _pil_bytes(Image.fromarray(quadrants(96, 128)), "JPEG", quality=95)
    png = _pil_bytes(Image.fromarray(quadrants(96, 128)), "PNG")
    corrupt_png = bytearray(png)
    corrupt_png[60:80] = b"\x00" * 20  # inside the image data: bad CRC / bad zlib stream
    return {
        "bomb.png": png_bomb(),
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "corrupt.png": bytes(corrupt_png),
        "empty.jpg": b"",
        "text.jpg": b"this is not an image\n",
        "folder.jpg": None,
    }


def write_hostile(folder: str) -> list[str]:
    """Write every hostile kind into ``folder``; returns their names."""
    os.makedirs(folder, exist_ok=True)
    for name, data in hostile_kinds().items():
        path = os.path.join(folder, name)
        if data is None:
            os.makedirs(path, exist_ok=True)
        else:
            with open(path, "wb") as f:
                f.write(data)
    return list(hostile_kinds())
