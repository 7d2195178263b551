"""MaxIoUAssigner on hand-made boxes (rules checked against PaddleDetection 2.6's)."""

import numpy as np
import paddle

from ppdet.modeling.assigners import MaxIoUAssigner, max_iou_assign


def assign(anchors, gts, **kw):
    matched, labels = MaxIoUAssigner(**kw)(
        paddle.to_tensor(anchors, "float32"), paddle.to_tensor(gts, "float32").reshape([-1, 4])
    )
    return matched.numpy().tolist(), labels.numpy().tolist()


def test_thresholds_and_low_quality():
    anchors = [
        [0, 0, 10, 10],  # IoU 1 with gt 0: positive
        [0, 0, 10, 5],  # IoU 0.5: positive (>=)
        [0, 0, 10, 4],  # IoU 0.4: ignored (negative is < 0.4)
        [0, 0, 10, 3],  # IoU 0.3: negative
        [20, 20, 30, 30],  # IoU 0.25 with gt 1, its best anchor: low-quality positive
        [100, 100, 110, 110],  # no overlap: negative
    ]
    gts = [[0, 0, 10, 10], [20, 20, 40, 40], [200, 200, 210, 210]]  # gt 2 overlaps nothing
    matched, labels = assign(anchors, gts)
    assert labels == [1, 1, -1, 0, 1, 0]
    assert matched[:5] == [0, 0, 0, 0, 1]
    _, labels = assign(anchors, gts, allow_low_quality=False)
    assert labels == [1, 1, -1, 0, 0, 0]


def test_low_quality_keeps_the_anchors_best_gt_and_ties():
    # anchor 0 is the best anchor of both gts; it stays matched to its own best gt (index 0)
    matched, labels = assign(
        [[0, 0, 12, 12], [100, 100, 110, 110]], [[0, 0, 20, 20], [0, 0, 30, 30]]
    )
    assert matched == [0, 0] and labels == [1, 0]
    # two identical best anchors are both positive
    _, labels = assign([[20, 20, 30, 30], [20, 20, 30, 30], [0, 0, 5, 5]], [[20, 20, 40, 40]])
    assert labels == [1, 1, 0]


def test_no_gt_is_all_negative():
    matched, labels = assign([[0, 0, 10, 10], [5, 5, 9, 9]], np.zeros((0, 4)))
    assert matched == [0, 0] and labels == [0, 0]
    m, lab = max_iou_assign(paddle.zeros([3, 0]))
    assert m.shape == [3] and lab.numpy().tolist() == [0, 0, 0]


def test_iou_matrix_input():
    iou = paddle.to_tensor([[0.1, 0.7], [0.45, 0.2], [0.39, 0.0]])
    matched, labels = max_iou_assign(iou, 0.5, 0.4, allow_low_quality=False)
    assert matched.numpy().tolist() == [1, 0, 0] and labels.numpy().tolist() == [1, -1, 0]
    _, labels = max_iou_assign(iou, 0.5, 0.4, allow_low_quality=True)
    assert labels.numpy().tolist() == [1, 1, 0]  # anchor 1 is gt 0's best (0.45)
