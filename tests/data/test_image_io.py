"""Image reading: every odd kind decodes as a viewer shows it; every hostile kind is refused
with a reason, from the header where possible (the bomb is never decoded)."""

from __future__ import annotations

import os
import resource

import numpy as np
import pytest

from ppdet.data.errors import ImageDecodeError
from ppdet.data.image_io import image_size, list_image_files, read_image

from .image_kinds import PICTURE, hostile_kinds, png_bomb, quadrant_means, write_hostile, write_odd


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("odd"))
    return folder, write_odd(folder)


def test_every_odd_kind_decodes_to_rgb_uint8_as_shown(odd):
    folder, expected = odd
    for name, (want, tol) in expected.items():
        image = read_image(os.path.join(folder, name))
        assert image.dtype == np.uint8 and image.shape == want.shape, name
        assert image.flags.writeable, name
        if tol == 0:
            np.testing.assert_array_equal(image, want, err_msg=name)
        else:  # lossy JPEG: flat quadrants within tol of the expected colour
            np.testing.assert_allclose(quadrant_means(image), quadrant_means(want), atol=tol,
                                       err_msg=name)  # fmt: skip
        assert image_size(os.path.join(folder, name)) == want.shape[:2], name


def test_exif_orientation_turns_the_stored_pixels_upright(odd):
    folder, _ = odd
    stored_shape = {3: (24, 32), 6: (32, 24), 8: (32, 24)}
    for orientation, shape in stored_shape.items():
        path = os.path.join(folder, f"exif_orientation_{orientation}.jpg")
        from PIL import Image

        assert Image.open(path).size[::-1] == shape  # stored as turned
        image = read_image(path)
        assert image.shape[:2] == PICTURE.shape[:2]
        tl, tr, bl, br = quadrant_means(image)
        assert tl[0] > 200 and tr[1] > 180 and bl[2] > 200 and br.min() > 230  # R, G, B, white


@pytest.mark.parametrize(
    "name, reason",
    [
        ("bomb.png", r"900 megapixels exceed the limit of 100 megapixels \(not decoded"),
        ("truncated.jpg", "truncated JPEG"),
        ("truncated.png", "truncated PNG"),
        ("corrupt.png", "corrupt PNG|not a decodable"),
        ("empty.jpg", "empty file"),
        ("text.jpg", r"not a decodable image \(unknown format\)"),
        ("folder.jpg", "a directory"),
        ("missing.jpg", r"cannot read \(file not found\)"),
    ],
)
def test_hostile_kinds_are_refused_with_a_reason(tmp_path, name, reason):
    write_hostile(str(tmp_path))
    with pytest.raises(ImageDecodeError, match=reason) as err:
        read_image(str(tmp_path / name))
    assert err.value.path == str(tmp_path / name)
    assert "\n" not in str(err.value)


def test_the_pixel_limit_is_checked_from_the_header_without_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size < 1000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB
    for _ in range(3):
        with pytest.raises(ImageDecodeError, match="not decoded"):
            read_image(str(bomb))
        with pytest.raises(ImageDecodeError, match="exceed the limit"):
            image_size(str(bomb))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # decoding it would need 2.7 GB
    # a configurable limit, also above Pillow's own (about 179 megapixels)
    with pytest.raises(
        ImageDecodeError, match="40x30 = 0.0012 megapixels exceed the limit of 0.001"
    ):
        read_image(_small_png(tmp_path), max_pixels=1000)
    big = tmp_path / "big.png"
    big.write_bytes(png_bomb(20000, 10000))  # 200 megapixels: Pillow alone would refuse it
    assert image_size(str(big), max_pixels=300_000_000) == (10000, 20000)


def _small_png(tmp_path) -> str:
    from PIL import Image

    path = str(tmp_path / "small.png")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    return path


def test_listing_a_folder_takes_image_names_in_order(tmp_path):
    for name in ("b.JPG", "a.png", "c.txt", "d.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "e.jpeg").mkdir()
    names = [os.path.basename(p) for p in list_image_files(str(tmp_path))]
    assert names == ["a.png", "b.JPG", "d.tiff", "e.jpeg"]
    assert set(hostile_kinds())  # every hostile name is image-like, so a listing includes it
    assert all(n.lower().endswith((".jpg", ".png")) for n in hostile_kinds())
