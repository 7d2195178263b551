"""RandomScaledCrop: square output, boxes moved with the pixels, deterministic at scale 1."""

import numpy as np
import pytest

from ppdet.data.transforms import RandomScaledCrop


def drawn_sample(h=60, w=120):
    """A black image with one white rectangle and its box (x1y1x2y2 pixels)."""
    image = np.zeros((h, w, 3), np.float32)
    image[10:30, 40:100] = 1.0
    return {
        "image": image,
        "gt_bbox": np.array([[40, 10, 100, 30]], np.float32),
        "gt_class": np.array([[2]], np.int32),
        "scale_factor": np.ones(2, np.float32),
    }


def test_scale_one_resizes_long_side_and_pads_to_square():
    out = RandomScaledCrop(target_dim=64, scale_range=[1.0, 1.0])(drawn_sample())
    assert out["image"].shape == (64, 64, 3)
    np.testing.assert_allclose(out["im_shape"], [32, 64])  # 60x120 -> 32x64 content
    np.testing.assert_allclose(out["scale_factor"], [32 / 60, 64 / 120], rtol=1e-6)
    box = out["gt_bbox"][0]
    np.testing.assert_allclose(box, [40 * 64 / 120, 10 * 32 / 60, 100 * 64 / 120, 16], atol=1e-4)
    assert out["image"][32:].max() == 0  # bottom padding
    x1, y1, x2, y2 = np.round(box).astype(int)
    assert out["image"][y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].min() > 0.9  # box still on the object


@pytest.mark.parametrize("seed", range(5))
def test_jitter_keeps_boxes_on_the_object(seed):
    np.random.seed(seed)
    out = RandomScaledCrop(target_dim=48, scale_range=[0.5, 2.0])(drawn_sample())
    assert out["image"].shape == (48, 48, 3)
    assert len(out["gt_bbox"]) == len(out["gt_class"])
    for x1, y1, x2, y2 in np.round(out["gt_bbox"]).astype(int):
        if x2 - x1 > 2 and y2 - y1 > 2:
            assert out["image"][y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].min() > 0.5
    ch, cw = out["im_shape"]
    assert (out["gt_bbox"][:, [2, 0]] <= cw).all() and (out["gt_bbox"][:, [3, 1]] <= ch).all()


def test_bad_arguments_and_chw_image():
    with pytest.raises(ValueError, match="scale_range"):
        RandomScaledCrop(64, [2.0, 1.0])
    sample = drawn_sample()
    sample["image"] = sample["image"].transpose(2, 0, 1)
    with pytest.raises(ValueError, match="before Permute"):
        RandomScaledCrop(64)(sample)
