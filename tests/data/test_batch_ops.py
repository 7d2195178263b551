"""Batch transforms: one size per batch, stride padding, gt padding."""

from __future__ import annotations

import numpy as np

from ppdet.data.transforms import BatchCompose, BatchRandomResize, PadBatch, PadGT, Permute

from .conftest import RED, inside, painted_image


def sample(h: int, w: int, boxes: list) -> dict:
    return {
        "image": painted_image(h, w, boxes, [RED] * len(boxes)),
        "im_shape": np.array([h, w], np.float32),
        "scale_factor": np.ones(2, np.float32),
        "gt_bbox": np.array(boxes, np.float32).reshape(-1, 4),
        "gt_class": np.zeros((len(boxes), 1), np.int32),
    }


def batch() -> list[dict]:
    return [
        sample(60, 80, [[10, 10, 40, 30]]),
        sample(90, 50, []),
        sample(40, 40, [[0, 0, 20, 20], [20, 20, 40, 40], [5, 25, 15, 35]]),
    ]


def test_batch_random_resize_one_size_per_batch():
    op = BatchRandomResize(target_size=[[48, 64], 32], keep_ratio=False, random_size=True)
    np.random.seed(0)
    seen = set()
    for _ in range(10):
        out = op(batch())
        shapes = {s["image"].shape for s in out}
        assert len(shapes) == 1
        seen |= shapes
        first = out[0]
        h, w = first["image"].shape[:2]
        np.testing.assert_allclose(first["scale_factor"], [h / 60, w / 80])
        np.testing.assert_allclose(
            first["gt_bbox"], [[10 * w / 80, 10 * h / 60, 40 * w / 80, 30 * h / 60]]
        )
        assert first["im_shape"].tolist() == [h, w]
    assert seen == {(48, 64, 3), (32, 32, 3)}


def test_batch_random_resize_fixed_first_size_on_chw():
    samples = [Permute()(s) for s in batch()]
    out = BatchRandomResize(target_size=[[40, 60], [80, 80]], keep_ratio=False, random_size=False,
                            random_interp=True)(samples)  # fmt: skip
    assert {s["image"].shape for s in out} == {(3, 40, 60)}
    image = out[0]["image"].transpose(1, 2, 0)  # CHW -> HWC
    box = out[0]["gt_bbox"][0]
    np.testing.assert_allclose(box, [7.5, 40 / 6, 30, 20])
    np.testing.assert_allclose(inside(image, box, margin=1).mean(0), RED, atol=3)


def test_keep_ratio_then_pad_batch_to_stride():
    resized = BatchRandomResize(target_size=[64], keep_ratio=True)(batch())
    assert [s["image"].shape[:2] for s in resized] == [(48, 64), (64, 36), (64, 64)]
    padded = PadBatch(pad_to_stride=32)([Permute()(s) for s in resized])
    assert {s["image"].shape for s in padded} == {(3, 64, 64)}
    padded = PadBatch(pad_to_stride=0)([Permute()(s) for s in batch()])
    assert {s["image"].shape for s in padded} == {(3, 90, 80)}
    first = padded[0]
    assert first["im_shape"].tolist() == [60, 80] and np.all(first["image"][:, 60:] == 0)
    padded = PadBatch(pad_to_stride=32)([Permute()(s) for s in batch()])
    assert {s["image"].shape for s in padded} == {(3, 96, 96)}


def test_pad_gt_pads_to_the_largest_count():
    out = PadGT()(batch())
    for s, n in zip(out, [1, 0, 3], strict=True):
        assert s["gt_bbox"].shape == (3, 4) and s["gt_bbox"].dtype == np.float32
        for key, dtype in [("gt_class", np.int32), ("gt_score", np.float32), ("is_crowd", np.int32),
                           ("difficult", np.int32), ("pad_gt_mask", np.float32)]:  # fmt: skip
            assert s[key].shape == (3, 1) and s[key].dtype == dtype
        assert s["pad_gt_mask"][:, 0].tolist() == [1] * n + [0] * (3 - n)
        assert s["gt_score"][:, 0].tolist() == [1] * n + [0] * (3 - n)
        assert np.all(s["gt_bbox"][n:] == 0)
    np.testing.assert_array_equal(out[0]["gt_bbox"][0], [10, 10, 40, 30])


def test_pad_gt_fixed_count_and_empty_batch():
    out = PadGT(num_max_boxes=2)(batch())
    assert out[2]["gt_bbox"].shape == (2, 4) and out[2]["pad_gt_mask"].sum() == 2
    empty = PadGT()([sample(10, 10, []), sample(12, 12, [])])
    assert empty[0]["gt_bbox"].shape == (1, 4) and empty[0]["pad_gt_mask"].sum() == 0


def test_pad_gt_keeps_mixup_scores():
    s = sample(20, 20, [[0, 0, 5, 5], [5, 5, 9, 9]])
    s["gt_score"] = np.array([[0.3], [0.7]], np.float32)
    out = PadGT()([s, sample(20, 20, [[0, 0, 1, 1]] * 3)])
    np.testing.assert_allclose(out[0]["gt_score"][:, 0], [0.3, 0.7, 0.0])


def test_batch_compose_maps_sample_ops():
    out = BatchCompose([BatchRandomResize([32], keep_ratio=False), Permute(), PadGT()])(batch())
    assert {s["image"].shape for s in out} == {(3, 32, 32)}
    assert all("pad_gt_mask" in s for s in out)
