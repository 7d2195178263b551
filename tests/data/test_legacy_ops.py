"""PILResize: v0.1's Pillow resizing (SSD)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from ppdet.config.builder import create
from ppdet.data.transforms import NormalizeImage, Permute, PILResize, ScaleResize


def sample(h=7, w=10):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return {
        "image": image,
        "im_shape": np.array([h, w], np.float32),
        "scale_factor": np.ones(2, np.float32),
        "gt_bbox": np.array([[1, 2, 5, 6]], np.float32),
        "gt_poly": [[np.array([1, 2, 5, 2, 5, 6], np.float32)]],
    }


def test_pil_resize_equals_pillow_lanczos_and_scales_boxes():
    s = sample()
    expected = np.asarray(Image.fromarray(s["image"]).resize((5, 14), Image.Resampling.LANCZOS))
    out = PILResize([14, 5])(s)
    np.testing.assert_array_equal(out["image"], expected)
    np.testing.assert_allclose(out["im_shape"], [14, 5])
    np.testing.assert_allclose(out["scale_factor"], [2.0, 0.5])
    np.testing.assert_allclose(out["gt_bbox"], [[0.5, 4, 2.5, 12]])
    np.testing.assert_allclose(out["gt_poly"][0][0], [0.5, 4, 2.5, 4, 2.5, 12])


def test_pil_resize_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="Pillow filter"):
        PILResize(300, interp=7)
    s = sample()
    s["image"] = s["image"].astype(np.float32)
    with pytest.raises(ValueError, match="before NormalizeImage"):
        PILResize(300)(s)


def test_v01_ssd_test_pipeline_from_config():
    """v0.1: PIL LANCZOS resize -> Permute(to_bgr) -> (x - 127.5) / 127.502231; ours in our
    operators' order (NormalizeImage works on HWC; equal mean/std on all channels)."""
    ops = [
        create("PILResize", {"target_size": [6, 6], "interp": 1}, role="transform"),
        NormalizeImage(mean=[127.5] * 3, std=[127.502231] * 3, is_scale=False),
        Permute(to_bgr=True),
    ]
    s = sample()
    rgb = s["image"]
    for op in ops:
        s = op(s)
    pil = np.asarray(Image.fromarray(rgb).resize((6, 6), 1)).astype(np.float32)
    expected = (pil.transpose(2, 0, 1)[::-1] - 127.5) / 127.502231
    np.testing.assert_allclose(s["image"], expected, rtol=1e-6, atol=1e-6)


def test_scale_resize_uses_one_scale_like_v01():
    """v0.1 ResizeImage(target 800, max 1333) on a 300 x 451 image: s = 8/3, cv2 fx = fy = s
    gives 800 x 1203 (Resize(keep_ratio) would stretch x by 1203 / 451 instead)."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(300, 451, 3)).astype(np.float32)  # after NormalizeImage, as v0.1
    s = {
        "image": image,
        "scale_factor": np.ones(2, np.float32),
        "gt_bbox": np.array([[3, 6, 9, 12]], np.float32),
    }
    out = ScaleResize(800, 1333)(s)
    expected = cv2.resize(image, None, None, fx=800 / 300, fy=800 / 300, interpolation=1)
    np.testing.assert_array_equal(out["image"], expected)
    assert out["image"].shape == (800, 1203, 3)
    np.testing.assert_allclose(out["im_shape"], [800, 1203])
    np.testing.assert_allclose(out["scale_factor"], [8 / 3, 8 / 3], rtol=1e-6)
    np.testing.assert_allclose(out["gt_bbox"], [[8, 16, 24, 32]], rtol=1e-6)


def test_scale_resize_caps_the_long_side():
    s = {"image": np.zeros((100, 400, 3), np.uint8)}
    out = ScaleResize(800, 1333)(s)  # 8 x 400 > 1333: s = 1333 / 400
    assert out["image"].shape == (333, 1333, 3)
    np.testing.assert_allclose(out["scale_factor"], [1333 / 400] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="before Permute"):
        ScaleResize(800)(Permute()(sample()))
