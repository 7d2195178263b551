"""Stitcher: mosaics keep every box on its object (pixels under each moved box), gt fields and
polygons move with their boxes, the switching rule follows its threshold, loss by scale."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppdet.engine.stitcher import Stitcher, losses_by_scale, stitch_batch

H, W = 64, 96
# per image: objects (x1, y1, x2, y2), even coordinates so a 2x downscale is exact
OBJECTS = [
    [(8, 8, 40, 32), (60, 40, 92, 60)],
    [(0, 0, 20, 20)],
    [(50, 10, 90, 50), (10, 30, 30, 62)],
    [(20, 20, 80, 44)],
    [(40, 2, 46, 8)],
]


def colour(image_idx: int, obj_idx: int) -> float:
    return 10.0 * (image_idx + 1) + obj_idx + 1.0  # distinct per object, 0 = background


def make_batch(objects=OBJECTS, h=H, w=W, polys=False):
    b, m = len(objects), max(len(o) for o in objects)
    image = np.zeros((b, 3, h, w), np.float32)
    boxes = np.zeros((b, m, 4), np.float32)
    cls = np.zeros((b, m, 1), np.int32)
    mask = np.zeros((b, m, 1), np.float32)
    for i, objs in enumerate(objects):
        for j, (x1, y1, x2, y2) in enumerate(objs):
            image[i, :, y1:y2, x1:x2] = colour(i, j)
            boxes[i, j] = (x1, y1, x2, y2)
            cls[i, j] = 10 * i + j  # identifies the object
            mask[i, j] = 1.0
    batch = {
        "image": paddle.to_tensor(image),
        "im_shape": paddle.to_tensor(np.tile([[h, w]], (b, 1)).astype(np.float32)),
        "scale_factor": paddle.to_tensor(np.tile([[2.0, 2.0]], (b, 1)).astype(np.float32)),
        "im_id": paddle.to_tensor(np.arange(b, dtype=np.int64).reshape(b, 1)),
        "gt_bbox": paddle.to_tensor(boxes),
        "gt_class": paddle.to_tensor(cls),
        "gt_score": paddle.to_tensor(mask.copy()),
        "is_crowd": paddle.to_tensor(np.zeros((b, m, 1), np.int32)),
        "difficult": paddle.to_tensor(np.zeros((b, m, 1), np.int32)),
        "pad_gt_mask": paddle.to_tensor(mask),
    }
    if polys:
        batch["gt_poly"] = [
            [[np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float32)] for x1, y1, x2, y2 in objs]
            for objs in objects
        ]
    return batch


def test_every_moved_box_covers_its_object():
    out = stitch_batch(make_batch())
    image = out["image"].numpy()
    assert image.shape == (5, 3, H, W)
    boxes, cls, mask = (out[k].numpy() for k in ("gt_bbox", "gt_class", "pad_gt_mask"))
    assert boxes.shape == (5, 8, 4)
    for i in range(5):
        covered = np.zeros((H, W), bool)
        real = mask[i, :, 0] > 0
        for (x1, y1, x2, y2), c in zip(boxes[i][real], cls[i][real, 0]):
            src, obj = divmod(int(c), 10)
            x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
            patch = image[i, :, y1:y2, x1:x2]
            assert patch.size > 0
            np.testing.assert_array_equal(patch, colour(src, obj))  # exactly the object
            covered[y1:y2, x1:x2] = True
        # nothing else was moved: outside all boxes the mosaic is background
        assert (image[i][:, ~covered] == 0).all()


def test_sources_cells_and_row_order():
    out = stitch_batch(make_batch())
    cls, mask = out["gt_class"].numpy()[..., 0], out["pad_gt_mask"].numpy()[..., 0]
    boxes = out["gt_bbox"].numpy()
    # mosaic 1: images 1, 2, 3, 4 (top-left, top-right, bottom-left, bottom-right)
    assert list(cls[1][mask[1] > 0]) == [10, 20, 21, 30, 40]
    np.testing.assert_allclose(boxes[1, 0], [0, 0, 10, 10])  # image 1, top-left, halved
    np.testing.assert_allclose(boxes[1, 1], [25 + 48, 5, 45 + 48, 25])  # image 2, top-right
    np.testing.assert_allclose(boxes[1, 3], [10, 10 + 32, 40, 22 + 32])  # image 3, bottom-left
    np.testing.assert_allclose(boxes[1, 4], [20 + 48, 1 + 32, 23 + 48, 4 + 32])  # image 4
    # mosaic 4 wraps around: images 4, 0, 1, 2
    assert list(cls[4][mask[4] > 0]) == [40, 0, 1, 10, 20, 21]
    # padding rows last, zero, masked
    for i in range(5):
        n = int(mask[i].sum())
        assert (mask[i, :n] == 1).all() and (mask[i, n:] == 0).all()
        assert (boxes[i, n:] == 0).all() and (cls[i, n:] == 0).all()
    np.testing.assert_array_equal(out["gt_score"].numpy()[..., 0], mask)
    assert out["is_crowd"].dtype == paddle.int32 and out["gt_bbox"].dtype == paddle.float32


def test_per_image_fields():
    out = stitch_batch(make_batch())
    np.testing.assert_array_equal(out["im_shape"].numpy(), np.tile([[H, W]], (5, 1)))
    np.testing.assert_array_equal(out["im_id"].numpy()[:, 0], np.arange(5))
    np.testing.assert_allclose(out["scale_factor"].numpy(), np.full((5, 2), 1.0))


def test_polygons_move_with_boxes():
    out = stitch_batch(make_batch(polys=True))
    boxes, mask = out["gt_bbox"].numpy(), out["pad_gt_mask"].numpy()[..., 0]
    for i in range(5):
        polys = out["gt_poly"][i]
        assert len(polys) == int(mask[i].sum())
        for box, (poly,) in zip(boxes[i], polys):
            xs, ys = poly[0::2], poly[1::2]
            np.testing.assert_allclose([xs.min(), ys.min(), xs.max(), ys.max()], box, atol=1e-5)


def test_odd_sizes_leave_a_zero_border():
    objects = [[(2, 2, 10, 12)], [(4, 6, 14, 18)]]
    out = stitch_batch(make_batch(objects, h=33, w=45))
    image = out["image"].numpy()
    assert image.shape == (2, 3, 33, 45)
    assert (image[:, :, 32, :] == 0).all() and (image[:, :, :, 44] == 0).all()
    boxes = out["gt_bbox"].numpy()
    np.testing.assert_allclose(boxes[0, 0], [2 * 22 / 45, 2 * 16 / 33, 10 * 22 / 45, 12 * 16 / 33])


def test_batch_without_boxes_and_unknown_fields():
    batch = make_batch()
    images_only = {k: batch[k] for k in ("image", "im_shape", "scale_factor", "im_id")}
    out = stitch_batch(images_only)
    assert "gt_bbox" not in out and tuple(out["image"].shape) == (5, 3, H, W)
    with pytest.raises(ValueError, match="target0"):
        stitch_batch({**batch, "target0": paddle.zeros([5, 1])})


def test_switching_rule_follows_threshold():
    stitcher = Stitcher(threshold=0.1)
    batch = make_batch()
    assert stitcher.before_batch(batch) is batch  # no feedback yet: regular
    feedback = [
        ({"small": 0.05, "medium": 0.5, "large": 0.45}, True),  # share 0.05 < 0.1
        ({"small": 0.1, "medium": 0.9, "large": 0.0}, False),  # 0.1 is not below 0.1
        ({"small": 0.3, "medium": 0.3, "large": 0.4}, False),
        ({"small": 0.0, "medium": 1.0, "large": 0.0}, True),
        ({"small": 0.0, "medium": 0.0, "large": 0.0}, False),  # no positives: no feedback
        ({"small": paddle.to_tensor(1.0), "medium": paddle.to_tensor(99.0)}, True),
    ]
    for split, expected in feedback:
        assert stitcher.after_step(split) is expected
        got = stitcher.before_batch(batch)
        assert (got is not batch) is expected
        if expected:
            assert tuple(got["gt_bbox"].shape) == (5, 8, 4)
    assert stitcher.num_stitched == 3
    assert stitcher.last_share == pytest.approx(0.01)


def test_threshold_zero_never_and_one_almost_always_stitches():
    never, always = Stitcher(threshold=0.0), Stitcher(threshold=1.0)
    for share in (0.0, 0.2, 0.99):
        split = {"small": share, "large": 1.0 - share}
        assert never.after_step(split) is False
        assert always.after_step(split) is True


def test_state_round_trip_and_errors():
    a = Stitcher(0.2)
    a.after_step({"small": 0.1, "large": 0.9})
    a.before_batch(make_batch())
    b = Stitcher(0.2)
    b.set_state_dict(a.state_dict())
    assert (b.stitch_next, b.last_share, b.num_stitched) == (True, pytest.approx(0.1), 1)
    with pytest.raises(ValueError, match="reg_loss_by_scale"):
        a.after_step(None)
    with pytest.raises(ValueError, match="threshold"):
        Stitcher(1.5)
    with pytest.raises(ValueError, match="grid"):
        Stitcher(grid=1)


def test_losses_by_scale_hand_values():
    loss = paddle.to_tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    areas = paddle.to_tensor([10.0, 32.0**2 - 1, 32.0**2, 96.0**2 - 1, 96.0**2])
    split = losses_by_scale(loss, areas)
    assert {k: v.item() for k, v in split.items()} == {"small": 3.0, "medium": 7.0, "large": 5.0}
    empty = losses_by_scale(paddle.zeros([0]), paddle.zeros([0]))
    assert all(v.item() == 0.0 for v in empty.values())
    assert Stitcher().after_step(split) is False  # share 0.2


def test_grid_three():
    out = stitch_batch(make_batch(), grid=3)
    mask = out["pad_gt_mask"].numpy()[..., 0]
    assert out["gt_bbox"].shape == [5, 18, 4]
    # mosaic 0 holds images 0,1,2,3,4,0,1,2,3: 2+1+2+1+1+2+1+2+1 objects
    assert int(mask[0].sum()) == 13


def test_knows_every_field_the_loader_batches():
    from ppdet.data.loader import BATCH_FIELDS
    from ppdet.engine.stitcher import PER_BOX_FIELDS, PER_IMAGE_FIELDS

    assert set(BATCH_FIELDS) == set(PER_BOX_FIELDS) | set(PER_IMAGE_FIELDS)
