import numpy as np
import paddle
import pytest

from ppdet.ops.boxes import (
    box_area,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xyxy_to_cxcywh,
    clip_boxes,
)


def t(x):
    return paddle.to_tensor(np.asarray(x, dtype=np.float32))


def test_box_area_hand_values():
    boxes = t([[0, 0, 10, 10], [2, 3, 5, 7], [5, 5, 5, 9], [4, 4, 2, 2]])
    np.testing.assert_allclose(box_area(boxes).numpy(), [100, 12, 0, 0])


def test_box_iou_hand_values():
    a = t([[0, 0, 10, 10], [0, 0, 2, 2]])
    b = t([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30]])
    iou = box_iou(a, b).numpy()
    assert iou.shape == (2, 3)
    # 5x5 overlap: 25 / (100 + 100 - 25); identical: 1; disjoint: 0
    np.testing.assert_allclose(iou[0], [25 / 175, 1.0, 0.0], rtol=1e-6)
    # small box inside the big one: 4 / 100
    np.testing.assert_allclose(iou[1], [0.0, 0.04, 0.0], rtol=1e-6)


def test_box_iou_symmetric_and_batched():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(2, 5, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, size=(2, 5, 2))], axis=-1)
    xy = rng.uniform(0, 50, size=(2, 4, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 30, size=(2, 4, 2))], axis=-1)
    ab = box_iou(t(a), t(b)).numpy()
    ba = box_iou(t(b), t(a)).numpy()
    assert ab.shape == (2, 5, 4)
    np.testing.assert_allclose(ab, ba.transpose(0, 2, 1), rtol=1e-6)
    for k in range(2):  # the batched call equals one call per image
        np.testing.assert_allclose(ab[k], box_iou(t(a[k]), t(b[k])).numpy(), rtol=1e-6)
    assert (ab >= 0).all() and (ab <= 1).all()


def test_box_iou_degenerate_boxes_give_zero():
    iou = box_iou(t([[0, 0, 0, 0]]), t([[0, 0, 0, 0], [0, 0, 4, 4]])).numpy()
    np.testing.assert_array_equal(iou, [[0.0, 0.0]])


@pytest.mark.parametrize("shape_a,shape_b", [((0, 4), (3, 4)), ((3, 4), (0, 4)), ((0, 4), (0, 4))])
def test_box_iou_empty(shape_a, shape_b):
    iou = box_iou(paddle.zeros(shape_a), paddle.zeros(shape_b))
    assert tuple(iou.shape) == (shape_a[0], shape_b[0])


def test_convert_hand_values_and_round_trip():
    xyxy = t([[10, 20, 30, 60]])
    cxcywh = box_xyxy_to_cxcywh(xyxy)
    np.testing.assert_allclose(cxcywh.numpy(), [[20, 40, 20, 40]])
    np.testing.assert_allclose(box_cxcywh_to_xyxy(cxcywh).numpy(), xyxy.numpy())
    rng = np.random.default_rng(1)
    boxes = t(np.sort(rng.uniform(0, 100, size=(3, 7, 4)), axis=-1))
    back = box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(boxes))
    np.testing.assert_allclose(back.numpy(), boxes.numpy(), atol=1e-4)


def test_convert_empty():
    assert tuple(box_xyxy_to_cxcywh(paddle.zeros([0, 4])).shape) == (0, 4)
    assert tuple(box_cxcywh_to_xyxy(paddle.zeros([2, 0, 4])).shape) == (2, 0, 4)
    assert tuple(box_area(paddle.zeros([0, 4])).shape) == (0,)


def test_clip_boxes():
    boxes = t([[-5, 3, 120, 50], [10, -1, 20, 90]])
    out = clip_boxes(boxes, height=80, width=100).numpy()
    np.testing.assert_allclose(out, [[0, 3, 100, 50], [10, 0, 20, 80]])
    # per-image sizes broadcast: boxes [B, N, 4], sizes [B, 1]
    batched = paddle.stack([boxes, boxes])
    out = clip_boxes(batched, height=t([[80], [40]]), width=t([[100], [15]])).numpy()
    np.testing.assert_allclose(out[1], [[0, 3, 15, 40], [10, 0, 15, 40]])
    assert tuple(clip_boxes(paddle.zeros([0, 4]), 10, 10).shape) == (0, 4)


# ---- aligned (element-wise) IoU / GIoU and the enclosing box ----------------------------


def test_aligned_iou_giou_enclosing_hand_values():
    from ppdet.ops.boxes import box_giou_aligned, box_iou_aligned, enclosing_box

    a = t([[0, 0, 10, 10], [2, 2, 6, 6], [0, 0, 2, 2], [0, 0, 4, 2]])
    b = t([[0, 0, 10, 10], [0, 0, 10, 10], [4, 0, 6, 2], [0, 0, 2, 4]])
    # identical; nested (16 inside 100); disjoint (C = 6x2 = 12, U = 8); crossed (4 / 12)
    np.testing.assert_allclose(box_iou_aligned(a, b).numpy(), [1, 0.16, 0, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(
        box_giou_aligned(a, b).numpy(), [1, 0.16, -4 / 12, 1 / 3 - 4 / 16], rtol=1e-6
    )
    np.testing.assert_array_equal(
        enclosing_box(a, b).numpy(),
        [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 6, 2], [0, 0, 4, 4]],
    )


def test_aligned_iou_equals_diagonal_of_pairwise():
    from ppdet.ops.boxes import box_iou_aligned

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, size=(6, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, size=(6, 2))], axis=-1)
    xy = rng.uniform(0, 50, size=(6, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 30, size=(6, 2))], axis=-1)
    np.testing.assert_allclose(
        box_iou_aligned(t(a), t(b)).numpy(), np.diag(box_iou(t(a), t(b)).numpy()), rtol=1e-6
    )


def test_aligned_giou_zero_area_and_empty():
    from ppdet.ops.boxes import box_giou_aligned

    # two points at the same place: IoU 0 and an empty enclosing box -> GIoU 0, not NaN
    np.testing.assert_array_equal(box_giou_aligned(t([[3, 3, 3, 3]]), t([[3, 3, 3, 3]])), [0.0])
    assert tuple(box_giou_aligned(paddle.zeros([0, 4]), paddle.zeros([0, 4])).shape) == (0,)
