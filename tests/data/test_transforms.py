"""Sample transforms: boxes follow the image exactly (hand-computed and by painted pixels)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ppdet.data.errors import ImageDecodeError
from ppdet.data.transforms import (
    Decode,
    Mixup,
    NormalizeImage,
    Permute,
    RandomCrop,
    RandomDistort,
    RandomExpand,
    RandomFlip,
    Resize,
)

from .conftest import BLUE, RED, inside, painted_image, write_jpeg

BOXES = [[20, 10, 60, 50], [120, 40, 190, 90]]  # in a 100 x 200 (h x w) image


def sample_with_boxes(h: int = 100, w: int = 200, boxes=BOXES) -> dict:
    """A decoded sample: grey image with box 0 red and box 1 blue."""
    image = painted_image(h, w, boxes, [RED, BLUE][: len(boxes)])
    return {
        "image": image,
        "im_id": np.array([0], np.int64),
        "h": h,
        "w": w,
        "im_shape": np.array([h, w], np.float32),
        "scale_factor": np.ones(2, np.float32),
        "gt_bbox": np.array(boxes, np.float32).reshape(-1, 4),
        "gt_class": np.arange(len(boxes), dtype=np.int32).reshape(-1, 1),
        "is_crowd": np.zeros((len(boxes), 1), np.int32),
        "difficult": np.zeros((len(boxes), 1), np.int32),
    }


def assert_boxes_on_colours(sample: dict, margin: int = 2) -> None:
    """Pixels inside each box have the colour painted there (red for class 0, blue for 1)."""
    for box, cls in zip(sample["gt_bbox"], sample["gt_class"][:, 0], strict=True):
        pixels = inside(sample["image"], box, margin).astype(int)
        assert len(pixels) > 0
        np.testing.assert_allclose(pixels.mean(0), [RED, BLUE][cls], atol=3)


def test_decode_sets_image_and_shapes(tmp_path):
    path = write_jpeg(str(tmp_path / "x.jpg"), painted_image(30, 40, [[0, 0, 10, 10]], [RED]))
    sample = Decode()({"im_file": path, "h": 0, "w": 0})
    assert sample["image"].shape == (30, 40, 3) and sample["image"].dtype == np.uint8
    np.testing.assert_allclose(sample["image"][5, 5], RED, atol=3)  # RGB order
    assert sample["im_shape"].tolist() == [30, 40] and sample["scale_factor"].tolist() == [1, 1]
    assert (sample["h"], sample["w"]) == (30, 40)


def test_decode_rejects_missing_truncated_and_garbage_files(tmp_path):
    path = write_jpeg(str(tmp_path / "x.jpg"), painted_image(30, 40, [], []))
    data = open(path, "rb").read()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"hello")
    for name, reason in [
        ("cut.jpg", "truncated"),
        ("junk.jpg", "not a decodable"),
        ("no.jpg", "cannot read"),
    ]:
        with pytest.raises(ImageDecodeError, match=reason) as err:
            Decode()({"im_file": os.path.join(tmp_path, name)})
        assert err.value.path.endswith(name)


def test_resize_fixed_size_hand_computed():
    sample = Resize(target_size=[200, 100], keep_ratio=False, interp=0)(sample_with_boxes())
    assert sample["image"].shape == (200, 100, 3)
    np.testing.assert_allclose(sample["gt_bbox"], [[10, 20, 30, 100], [60, 80, 95, 180]])
    assert sample["im_shape"].tolist() == [200, 100]
    assert sample["scale_factor"].tolist() == [2.0, 0.5]
    assert_boxes_on_colours(sample)


@pytest.mark.parametrize(
    "target, scale, shape", [([150, 400], 1.5, (150, 300)), ([150, 250], 1.25, (125, 250))]
)
def test_resize_keep_ratio_hand_computed(target, scale, shape):
    sample = Resize(target_size=target, keep_ratio=True)(sample_with_boxes())
    assert sample["image"].shape[:2] == shape
    np.testing.assert_allclose(sample["gt_bbox"], np.array(BOXES) * scale, rtol=1e-6)
    np.testing.assert_allclose(sample["scale_factor"], [scale, scale])
    assert sample["im_shape"].tolist() == list(shape)
    assert_boxes_on_colours(sample)


def test_resize_scale_factor_accumulates_and_works_on_chw():
    sample = Resize(50, keep_ratio=False)(sample_with_boxes())
    sample = Permute()(sample)
    sample = Resize([100, 100], keep_ratio=False)(sample)
    assert sample["image"].shape == (3, 100, 100)
    np.testing.assert_allclose(sample["scale_factor"], [1.0, 0.5])
    np.testing.assert_allclose(sample["gt_bbox"], np.array(BOXES) * [0.5, 1, 0.5, 1])


def test_flip_hand_computed():
    sample = RandomFlip(prob=1.0)(sample_with_boxes())
    np.testing.assert_array_equal(sample["gt_bbox"], [[140, 10, 180, 50], [10, 40, 80, 90]])
    assert_boxes_on_colours(sample, margin=0)
    unchanged = RandomFlip(prob=0.0)(sample_with_boxes())
    np.testing.assert_array_equal(unchanged["gt_bbox"], BOXES)


def test_expand_shifts_boxes_by_the_paste_offset():
    np.random.seed(1)
    sample = RandomExpand(ratio=3.0, prob=1.0, fill_value=[10, 20, 30])(sample_with_boxes())
    out_h, out_w = sample["image"].shape[:2]
    assert out_h > 100 and out_w > 200 and sample["im_shape"].tolist() == [out_h, out_w]
    dx, dy = (sample["gt_bbox"][0] - BOXES[0])[:2]
    np.testing.assert_array_equal(sample["gt_bbox"], np.array(BOXES) + [dx, dy, dx, dy])
    assert_boxes_on_colours(sample, margin=0)
    assert sample["image"][0, 0].tolist() == [10, 20, 30] or (dx, dy) == (0, 0)


def test_crop_hand_computed(monkeypatch):
    crop = RandomCrop(thresholds=[0.0], allow_no_crop=False)
    monkeypatch.setattr(crop, "_sample_crop", lambda h, w: np.array([30, 20, 130, 80], np.float32))
    sample = crop(sample_with_boxes())
    assert sample["image"].shape == (60, 100, 3) and sample["im_shape"].tolist() == [60, 100]
    # box 0 (centre 40, 30) is kept and clipped; box 1 (centre 155, 65) lies outside: dropped
    np.testing.assert_array_equal(sample["gt_bbox"], [[0, 0, 30, 30]])
    assert sample["gt_class"].tolist() == [[0]] and sample["is_crowd"].shape == (1, 1)
    assert_boxes_on_colours(sample, margin=0)


def test_random_crop_keeps_boxes_on_their_pixels():
    np.random.seed(0)
    cropped = 0
    for _ in range(20):
        sample = RandomCrop()(sample_with_boxes())
        cropped += sample["image"].shape[:2] != (100, 200)
        assert len(sample["gt_bbox"]) >= 1
        assert np.all(sample["gt_bbox"][:, 2:] <= sample["image"].shape[1::-1])
        assert_boxes_on_colours(sample, margin=0)
    assert cropped > 0


def test_crop_without_boxes_is_a_no_op():
    sample = sample_with_boxes(boxes=[])
    assert RandomCrop()(sample)["image"].shape == (100, 200, 3)


def test_distort_changes_colours_not_geometry():
    np.random.seed(0)
    before = sample_with_boxes()
    after = RandomDistort(hue=[-18, 18, 1], saturation=[0.5, 1.5, 1], contrast=[0.5, 1.5, 1],
                          brightness=[0.5, 1.5, 1], random_channel=True)(dict(before))  # fmt: skip
    assert after["image"].shape == (100, 200, 3) and after["image"].dtype == np.uint8
    assert not np.array_equal(after["image"], before["image"])
    np.testing.assert_array_equal(after["gt_bbox"], BOXES)


def test_distort_fixed_order_puts_contrast_before_or_after_saturation_and_hue(monkeypatch):
    # random_apply off (PaddleDetection): brightness first; contrast second or last, 50/50
    op = RandomDistort(random_apply=False)
    orders = []
    current = []

    def record(which, img):
        current.append(which)
        return img

    monkeypatch.setattr(op, "_apply", record)
    np.random.seed(1)
    for _ in range(200):
        current.clear()
        op(sample_with_boxes())
        orders.append(tuple(current))
    assert set(orders) == {(0, 1, 2, 3), (0, 2, 3, 1)}
    assert 60 < orders.count((0, 1, 2, 3)) < 140


def test_normalize_and_permute():
    sample = sample_with_boxes()
    sample = NormalizeImage(mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 1.0])(sample)
    np.testing.assert_allclose(sample["image"][15, 25], [1.0, -2.0, -0.5], atol=1e-6)  # red
    sample = Permute()(sample)
    assert sample["image"].shape == (3, 100, 200) and sample["image"].dtype == np.float32
    assert sample["image"].flags["C_CONTIGUOUS"]


def test_permute_to_bgr_reverses_channels():
    # PaddleDetection v0.1's SSD fed BGR: a red pixel (R=255) lands in channel 2
    sample = sample_with_boxes()
    rgb = sample["image"].copy()
    out = Permute(to_bgr=True)(sample)["image"]
    assert out.shape == (3, 100, 200) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, rgb[:, :, ::-1].transpose(2, 0, 1))
    assert out[2, 15, 25] == rgb[15, 25, 0] and out[0, 15, 25] == rgb[15, 25, 2]


def test_mixup_blends_images_and_weights_boxes():
    a = sample_with_boxes()
    b = sample_with_boxes(h=120, w=80, boxes=[[10, 10, 40, 40]])
    a["mixup"] = b
    np.random.seed(3)
    factor = np.random.beta(1.5, 1.5)
    np.random.seed(3)
    out = Mixup(alpha=1.5, beta=1.5)(a)
    assert "mixup" not in out and out["image"].shape == (120, 200, 3)
    assert out["im_shape"].tolist() == [120, 200] and (out["h"], out["w"]) == (120, 200)
    np.testing.assert_allclose(out["gt_bbox"], BOXES + [[10, 10, 40, 40]])
    np.testing.assert_allclose(out["gt_score"][:, 0], [factor, factor, 1 - factor], rtol=1e-6)
    assert out["gt_class"].tolist() == [[0], [1], [0]]
    red = np.array(RED, np.float32)
    np.testing.assert_allclose(out["image"][20, 20], red * factor + red * (1 - factor), atol=1e-3)
    np.testing.assert_allclose(out["image"][110, 150], 0)  # outside both images
    np.testing.assert_allclose(out["image"][110, 30], 128 * (1 - factor), atol=1e-3)


def test_mixup_without_partner_adds_unit_scores():
    out = Mixup()(sample_with_boxes())
    assert out["gt_score"].tolist() == [[1.0], [1.0]] and out["gt_score"].dtype == np.float32
