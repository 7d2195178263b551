"""AutoAugment for detection: every geometric operation moves the boxes with the image (the
pixels of a bright object stay inside, and fill, its moved box), box-only operations change
pixels inside boxes only, colour operations against PIL, probability 0 / 1, seeded runs,
objects pushed out are dropped, and every policy runs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from ppdet.config.builder import create
from ppdet.data.transforms.autoaugment import (
    OPERATIONS,
    POLICIES,
    AutoAugment,
    AutoAugmentOp,
    apply_affine,
    autocontrast,
    brightness,
    color,
    contrast,
    equalize,
    posterize,
    sharpness,
    solarize,
    solarize_add,
)

H, W = 120, 160
BRIGHT, DARK = 255, 30
RECT = (60.0, 40.0, 100.0, 70.0)  # x1 y1 x2 y2, well inside the image
GEOMETRIC = ["TranslateX_BBox", "TranslateY_BBox", "ShearX_BBox", "ShearY_BBox", "Rotate_BBox"]


def bright_sample(rect=RECT, h=H, w=W, polys=False) -> dict:
    image = np.full((h, w, 3), DARK, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in rect)
    image[y1:y2, x1:x2] = BRIGHT
    sample = {
        "image": image,
        "gt_bbox": np.array([rect], np.float32),
        "gt_class": np.array([[3]], np.int32),
        "is_crowd": np.zeros((1, 1), np.int32),
    }
    if polys:
        sample["gt_poly"] = [[np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float32)]]
    return sample


def bright_bbox(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero((image == BRIGHT).all(axis=2))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("level", [2, 6, 10])
@pytest.mark.parametrize("op", GEOMETRIC)
@pytest.mark.parametrize("seed", [0, 1, 2])  # both signs of the magnitude
def test_geometric_operations_move_boxes_with_the_image(op, level, seed):
    np.random.seed(seed)
    if op.startswith("Translate"):
        level = min(level, 2)  # up to 50 px: the object stays inside the image
    out = AutoAugmentOp(op, prob=1.0, level=level)(bright_sample())
    box = out["gt_bbox"][0]
    # every bright pixel lies inside the moved box, and the box is tight around them
    np.testing.assert_allclose(bright_bbox(out["image"]), box, atol=1.0)
    x1, y1, x2, y2 = np.round(box).astype(int)
    inside = np.zeros((H, W), bool)
    inside[y1:y2, x1:x2] = True
    assert not (out["image"] == BRIGHT).all(axis=2)[~inside].any()
    if op.startswith("Translate"):  # a moved rectangle fills its box
        assert (out["image"][y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] == BRIGHT).all()
    assert out["gt_class"][0, 0] == 3


def test_rotation_direction_and_box_of_corners():
    """+90 degrees about the centre is counter-clockwise: the box's corners rotate with it."""
    from ppdet.data.transforms.autoaugment import _rotate

    sample = bright_sample(rect=(70, 20, 90, 40), h=100, w=100)
    out = apply_affine(sample, _rotate(90.0, 100, 100))
    # counter-clockwise by 90 about (50, 50): (x, y) -> (y, 100 - x)
    np.testing.assert_allclose(out["gt_bbox"][0], [20, 10, 40, 30], atol=1e-4)
    np.testing.assert_allclose(bright_bbox(out["image"]), [20, 10, 40, 30], atol=0)


def test_translate_and_shear_hand_values():
    from ppdet.data.transforms.autoaugment import _shear_x, _translate

    out = apply_affine(bright_sample(), _translate(-25.0, 10.0, H, W))
    np.testing.assert_allclose(out["gt_bbox"][0], [35, 50, 75, 80])
    np.testing.assert_array_equal(bright_bbox(out["image"]), [35, 50, 75, 80])
    assert (out["image"][:10] == 128).all()  # uncovered rows are grey
    sheared = apply_affine(bright_sample(), _shear_x(0.5, H, W))
    # x -> x - 0.5 y: corners (60,40)->40, (100,40)->80, (60,70)->25, (100,70)->65
    np.testing.assert_allclose(sheared["gt_bbox"][0], [25, 40, 80, 70])


def test_polygons_move_too_and_objects_pushed_out_are_dropped():
    from ppdet.data.transforms.autoaugment import _translate

    sample = bright_sample(polys=True)
    sample["gt_bbox"] = np.array([RECT, (140, 5, 158, 20)], np.float32)
    sample["gt_class"] = np.array([[3], [7]], np.int32)
    sample["is_crowd"] = np.zeros((2, 1), np.int32)
    sample["gt_poly"].append([np.array([140, 5, 158, 5, 158, 20, 140, 20], np.float32)])
    out = apply_affine(sample, _translate(30.0, 0.0, H, W))  # the second object leaves
    assert out["gt_class"][:, 0].tolist() == [3] and len(out["gt_poly"]) == 1
    np.testing.assert_allclose(out["gt_bbox"][0], [90, 40, 130, 70])
    np.testing.assert_allclose(out["gt_poly"][0][0], [90, 40, 130, 40, 130, 70, 90, 70])
    partly = apply_affine(bright_sample(), _translate(80.0, 0.0, H, W))  # clipped at 160
    np.testing.assert_allclose(partly["gt_bbox"][0], [140, 40, 160, 70])


@pytest.mark.parametrize("op", sorted(n for n in OPERATIONS if n.endswith("_Only_BBoxes")))
def test_box_only_operations_change_pixels_inside_boxes_only(op):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 50, 40], [70, 50, 130, 110], [100, 5, 150, 30]], np.float32)
    inside = np.zeros((H, W), bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        inside[y1:y2, x1:x2] = True
    changed_any = False
    for seed in range(6):
        np.random.seed(seed)
        sample = {"image": image.copy(), "gt_bbox": boxes.copy()}
        out = AutoAugmentOp(op, prob=1.0, level=8)(sample)
        np.testing.assert_array_equal(out["gt_bbox"], boxes)  # boxes stay
        diff = (out["image"] != image).any(axis=2)
        assert not diff[~inside].any()  # nothing outside the boxes changes
        changed_any |= bool(diff.any())
    assert changed_any
    np.random.seed(0)
    untouched = AutoAugmentOp(op, prob=0.0, level=8)({"image": image.copy(), "gt_bbox": boxes})
    np.testing.assert_array_equal(untouched["image"], image)


def test_box_only_probability_is_a_third_per_box():
    np.random.seed(0)
    boxes = np.array([[i * 4, 0, i * 4 + 4, 4] for i in range(40)], np.float32)
    image = np.zeros((8, 160, 3), np.uint8)
    image[:4] = ((np.arange(160) % 4) * 50).astype(np.uint8)[None, :, None]  # 0 50 100 150 per box
    out = AutoAugmentOp("Flip_Only_BBoxes", prob=1.0)({"image": image.copy(), "gt_bbox": boxes})
    flipped = sum(
        (out["image"][:4, i * 4 : i * 4 + 4] != image[:4, i * 4 : i * 4 + 4]).any()
        for i in range(40)
    )
    assert 5 <= flipped <= 22  # about 40 / 3


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_probability_zero_never_applies(op):
    sample = bright_sample()
    np.random.seed(0)
    out = AutoAugmentOp(op, prob=0.0, level=10)(copy.deepcopy(sample))
    np.testing.assert_array_equal(out["image"], sample["image"])
    np.testing.assert_array_equal(out["gt_bbox"], sample["gt_bbox"])


@pytest.mark.parametrize("op", sorted(n for n in OPERATIONS if not n.endswith("_Only_BBoxes")))
def test_probability_one_always_applies(op):
    rng = np.random.default_rng(1)
    image = rng.integers(40, 200, size=(H, W, 3), dtype=np.uint8)
    level = {"Posterize": 8, "Cutout": 3, "BBox_Cutout": 8}.get(op, 7)
    for seed in range(3):
        np.random.seed(seed)
        sample = {"image": image.copy(), "gt_bbox": np.array([RECT], np.float32)}
        out = AutoAugmentOp(op, prob=1.0, level=level)(sample)
        assert (out["image"] != image).any(), (op, seed)


def test_seeded_runs_are_deterministic():
    sample = bright_sample(polys=True)
    runs = []
    for seed in (5, 5, 6):
        np.random.seed(seed)
        aug = AutoAugment("v1")
        runs.append([aug(copy.deepcopy(sample)) for _ in range(8)])
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["gt_bbox"], b["gt_bbox"])
    assert any(
        not np.array_equal(a["image"], c["image"]) for a, c in zip(runs[0], runs[2], strict=True)
    )


@pytest.mark.parametrize("version", sorted(POLICIES))
def test_every_sub_policy_runs_and_keeps_boxes_valid(version):
    rng = np.random.default_rng(3)
    for index, sub in enumerate(POLICIES[version]):
        for seed in range(2):
            np.random.seed(seed)
            sample = bright_sample(polys=True)
            sample["image"] = (sample["image"] * 0.5 + rng.integers(0, 120, (H, W, 3))).astype(
                np.uint8
            )
            for name, prob, level in sub:
                sample = AutoAugmentOp(name, prob, level)(sample)
            assert sample["image"].shape == (H, W, 3) and sample["image"].dtype == np.uint8, index
            boxes = sample["gt_bbox"]
            assert len(boxes) == len(sample["gt_class"]) == len(sample["gt_poly"])
            assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
            assert (
                (boxes >= 0).all()
                and (boxes[:, [0, 2]] <= W).all()
                and (boxes[:, [1, 3]] <= H).all()
            )


def test_policy_tables():
    assert len(POLICIES["v0"]) == 5 and len(POLICIES["v1"]) == 20
    assert len(POLICIES["v2"]) == 15 and len(POLICIES["v3"]) == 15
    assert POLICIES["v0"][0] == [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)]
    assert POLICIES["v1"][:5] == POLICIES["v0"]


def test_policy_picks_one_sub_policy_uniformly(monkeypatch):
    picked = []
    import ppdet.data.transforms.autoaugment as aa

    monkeypatch.setattr(aa, "_run", lambda sample, name, prob, level: picked.append(name) or sample)
    np.random.seed(0)
    aug = AutoAugment("v0")
    for _ in range(300):
        aug(bright_sample())
    firsts = [n for n in picked[::2]]
    counts = {sub[0][0]: firsts.count(sub[0][0]) for sub in POLICIES["v0"]}
    assert all(40 <= c <= 80 for c in counts.values()), counts


# ---------------------------------------------------------------- colour operations vs PIL
def pil(image, fn):
    return np.asarray(fn(Image.fromarray(image)))


@pytest.fixture
def photo():
    rng = np.random.default_rng(7)
    base = rng.integers(30, 220, size=(40, 50, 3)).astype(np.uint8)
    base[:10] //= 3  # a dark band so histograms are uneven
    return base


def test_colour_operations_match_pil(photo):
    cases = [
        (autocontrast(photo), pil(photo, ImageOps.autocontrast), 1),
        (equalize(photo), pil(photo, ImageOps.equalize), 0),
        (posterize(photo, 3), pil(photo, lambda im: ImageOps.posterize(im, 3)), 0),
        (solarize(photo, 128), pil(photo, lambda im: ImageOps.solarize(im, 128)), 0),
        (color(photo, 0.4), pil(photo, lambda im: ImageEnhance.Color(im).enhance(0.4)), 1),
        (contrast(photo, 1.6), pil(photo, lambda im: ImageEnhance.Contrast(im).enhance(1.6)), 2),
        (
            brightness(photo, 1.3),
            pil(photo, lambda im: ImageEnhance.Brightness(im).enhance(1.3)),
            1,
        ),
        (sharpness(photo, 1.9), pil(photo, lambda im: ImageEnhance.Sharpness(im).enhance(1.9)), 1),
    ]
    for i, (ours, ref, atol) in enumerate(cases):
        assert ours.dtype == np.uint8
        np.testing.assert_allclose(ours.astype(int), ref.astype(int), atol=atol, err_msg=str(i))


def test_colour_hand_values():
    px = np.array([[[0, 100, 200]]], np.uint8)
    np.testing.assert_array_equal(posterize(px, 2), [[[0, 64, 192]]])
    np.testing.assert_array_equal(posterize(px, 0), [[[0, 0, 0]]])
    np.testing.assert_array_equal(solarize(px, 128), [[[0, 100, 55]]])
    np.testing.assert_array_equal(solarize_add(px, 110), [[[110, 210, 200]]])
    np.testing.assert_array_equal(brightness(px, 0.5), [[[0, 50, 100]]])


def test_float_images_keep_their_dtype_and_errors():
    sample = bright_sample()
    sample["image"] = sample["image"].astype(np.float32)
    np.random.seed(0)
    out = AutoAugmentOp("Equalize", prob=1.0)(sample)
    assert out["image"].dtype == np.float32
    with pytest.raises(ValueError, match="HWC"):
        AutoAugmentOp("Equalize")({"image": np.zeros((3, 20, 30), np.uint8)})
    with pytest.raises(ValueError, match="unknown operation 'Blur'"):
        AutoAugmentOp("Blur")
    with pytest.raises(ValueError, match="level"):
        AutoAugmentOp("Equalize", level=11)
    with pytest.raises(ValueError, match="autoaug_type"):
        AutoAugment("v9")


def test_registered_and_built_from_config():
    aug = create("AutoAugment", {"autoaug_type": "v0"}, role="transform")
    assert isinstance(aug, AutoAugment) and aug.autoaug_type == "v0"
    assert AutoAugment().autoaug_type == "v1"  # PaddleDetection's default
    op = create("AutoAugmentOp", {"op": "Rotate_BBox", "prob": 0.6, "level": 10}, role="transform")
    assert (op.op, op.prob, op.level) == ("Rotate_BBox", 0.6, 10.0)


def test_sample_without_boxes():
    np.random.seed(0)
    image = np.random.randint(0, 255, (H, W, 3)).astype(np.uint8)
    for name in ("BBox_Cutout", "Rotate_BBox", "TranslateY_Only_BBoxes"):
        out = AutoAugmentOp(name, prob=1.0)(
            {"image": image.copy(), "gt_bbox": np.zeros((0, 4), np.float32)}
        )
        assert out["image"].shape == image.shape and len(out["gt_bbox"]) == 0
