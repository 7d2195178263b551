"""Read image files: the header first, then the pixels as RGB uint8 [H, W, 3].

Every image ppdet decodes goes through ``read_image`` (the ``Decode`` transform, drawing
detections) and every size lookup through ``image_size``. The header (format, width, height)
is read before any pixel is decoded, so a file that declares more than ``max_pixels`` pixels
(a decompression bomb: a few kB of PNG declaring 30000 x 30000) is refused without allocating
its pixels. Anything wrong with a file is an ``ImageDecodeError`` naming it: missing, a
directory, empty, not an image, truncated, corrupt, too large.

The pixels come out as a photo viewer shows them:
- EXIF orientation is applied (a phone photo taken upright comes out upright); the size of a
  rotated photo is reported rotated too;
- grey and 1-bit images: the grey value in all three channels;
- 16-bit channels: the top 8 bits (value // 256);
- palette images: the palette colours;
- alpha (RGBA, LA, palette with a transparent colour): composited over white;
- CMYK (also Adobe's inverted CMYK JPEG) and YCbCr: converted to RGB;
- the content decides the format, not the file name (a PNG named ``.jpg`` is read as PNG);
- multi-frame files (GIF, TIFF, WebP): the first frame.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ppdet.data.errors import ImageDecodeError

DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels, e.g. 10000 x 10000: 300 MB as RGB uint8
# Names that count as images when a folder is listed (any case); the content decides the format.
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the image upright (orientation 1: as stored)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# What Pillow raises for a corrupt or cut file, while reading its header or its pixels.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error,
                  zlib.error)  # fmt: skip


def list_image_files(folder: str) -> list[str]:
    """Paths of the entries of ``folder`` whose names end in an image extension, sorted by name
    (not recursive). Entries are not opened here: a bad one is reported when it is read."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS))
    return [os.path.join(folder, n) for n in names]


def _allow_in_pillow(max_pixels: int) -> None:
    """Pillow refuses images above 2 * ``Image.MAX_IMAGE_PIXELS`` on its own (a process-wide
    setting, about 179 megapixels by default). A larger ppdet limit raises that setting to
    match, so that ``max_pixels`` decides; a smaller one leaves it alone."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and max_pixels > 2 * limit:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _megapixels(n: float) -> str:
    return f"{n / 1e6:.3g} megapixels"


@contextlib.contextmanager
def _opened(path: str, max_pixels: int) -> Iterator[Image.Image]:
    """The image of ``path`` with only its header read; ImageDecodeError for anything that is
    not an image of at most ``max_pixels`` pixels."""
    if os.path.isdir(path):
        raise ImageDecodeError(path, "a directory, not an image file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ImageDecodeError(path, "cannot read (file not found)") from None
    except OSError as e:
        raise ImageDecodeError(path, f"cannot read ({e.strerror or e})") from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ImageDecodeError(path, "empty file")
        _allow_in_pillow(max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(f)
        except Image.DecompressionBombError as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            size = _megapixels(int(found.group(1))) if found else "more pixels"
            raise ImageDecodeError(path, _too_large(size, max_pixels)) from None
        except UnidentifiedImageError:
            raise ImageDecodeError(path, "not a decodable image (unknown format)") from None
        except _PILLOW_ERRORS as e:
            if "truncated" in str(e).lower():
                reason = f"truncated {_format_by_signature(f)} file (cut inside its header)"
            else:
                reason = f"not a decodable image (bad header: {e})"
            raise ImageDecodeError(path, reason) from None
        w, h = image.size
        if w < 1 or h < 1:
            raise ImageDecodeError(path, f"{image.format} image of size {w}x{h}")
        if w * h > max_pixels:
            raise ImageDecodeError(path, _too_large(f"{w}x{h} = {_megapixels(w * h)}", max_pixels))
        yield image


def _format_by_signature(f) -> str:
    f.seek(0)
    head = f.read(8)
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head.startswith(b"\x89PNG"):
        return "PNG"
    return "image"


def _too_large(size: str, max_pixels: int) -> str:
    return (
        f"{size} exceed the limit of {_megapixels(max_pixels)} "
        "(not decoded; raise Decode.max_pixels to allow it)"
    )


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); 1 when there is none or the EXIF block is unreadable (the
    pixels are still good, only the rotation hint is lost)."""
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # Pillow raises many kinds for a malformed EXIF block
        return 1
    return value if value in _UPRIGHT else 1


def image_size(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of the image as shown (EXIF rotation applied), from the header only.

    Raises ImageDecodeError like ``read_image`` (except for damage after the header).
    """
    with _opened(path, max_pixels) as image:
        w, h = image.size
        return (w, h) if _orientation(image) in (5, 6, 7, 8) else (h, w)


def read_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image file ``path`` as RGB uint8 [H, W, 3], as a viewer shows it (module docstring).

    Args:
        path: an image file; the format comes from its content.
        max_pixels: refuse images with more pixels (width x height, from the header) without
            decoding them.
    Raises:
        ImageDecodeError naming ``path``: missing, unreadable, a directory, empty, not an image,
        truncated or corrupt, or larger than ``max_pixels``.
    """
    with _opened(path, max_pixels) as image:
        try:
            image.load()
        except _PILLOW_ERRORS as e:
            what = image.format or "image"
            cut = "truncated" in str(e).lower()
            reason = f"truncated {what} file" if cut else f"corrupt {what} data ({e})"
            raise ImageDecodeError(path, reason) from None
        transpose = _UPRIGHT.get(_orientation(image))
        if transpose is not None:
            image = image.transpose(transpose)
        return _to_rgb(image)


def _to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode as RGB uint8 [H, W, 3]."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_GREY:  # 16-bit grey (16-bit colour PNGs open as 8-bit RGB(A))
        values = np.asarray(image).astype(np.int64)  # [H, W]
        grey = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":  # 32-bit float grey: taken as 0-255 values
        grey = np.clip(np.nan_to_num(np.asarray(image)), 0, 255).round().astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA")).astype(np.uint32)  # [H, W, 4]
        alpha = rgba[:, :, 3:]
        over_white = (rgba[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return over_white.astype(np.uint8)
    if mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)  # a writable copy [H, W, 3]
