"""ppdet.ops.nms.multiclass_nms (Paddle's multiclass_nms3 kernel) against a plain numpy NMS."""

import numpy as np
import paddle

from ppdet.ops.nms import multiclass_nms


def numpy_iou(box, boxes):
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def reference_nms(boxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold):
    """One image. boxes [N, 4], scores [C, N] -> rows [class, score, box], class-grouped."""
    rows = []
    for c in range(scores.shape[0]):
        idx = np.nonzero(scores[c] > score_threshold)[0]
        idx = idx[np.argsort(-scores[c, idx], kind="stable")]
        if nms_top_k > -1:
            idx = idx[:nms_top_k]
        kept = []
        for k in idx:
            if all(numpy_iou(boxes[k], boxes[[j]])[0] <= nms_threshold for j in kept):
                kept.append(k)
        rows += [[c, scores[c, k], *boxes[k]] for k in kept]
    rows = np.array(rows, dtype=np.float32).reshape(-1, 6)
    if keep_top_k > -1 and len(rows) > keep_top_k:
        top = np.argsort(-rows[:, 1], kind="stable")[:keep_top_k]
        rows = rows[np.sort(top)]  # keep the class-grouped order
    return rows


def test_hand_made_case():
    boxes = paddle.to_tensor([[[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]], "float32")
    scores = paddle.to_tensor([[[0.9, 0.8, 0.3], [0.1, 0.7, 0.05]]], "float32")
    # boxes 0 and 1 overlap with IoU 81 / 119 = 0.68
    out, num = multiclass_nms(boxes, scores, score_threshold=0.06, nms_threshold=0.5)
    assert num.numpy().tolist() == [3] and num.dtype == paddle.int32
    expected = [
        [0, 0.9, 0, 0, 10, 10],  # class 0: box 1 suppressed by box 0
        [0, 0.3, 50, 50, 60, 60],
        [1, 0.7, 1, 1, 11, 11],  # class 1: box 0 (0.1) suppressed by box 1; box 2 below 0.06
    ]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    # a looser IoU threshold keeps the overlapping pair
    out, num = multiclass_nms(boxes, scores, score_threshold=0.06, nms_threshold=0.7)
    assert num.numpy().tolist() == [5]
    # keep_top_k keeps the best two over all classes
    out, num = multiclass_nms(boxes, scores, score_threshold=0.06, keep_top_k=2)
    np.testing.assert_allclose(out.numpy()[:, 1], [0.9, 0.7], rtol=1e-6)


def test_matches_numpy_reference_on_random_batch():
    rng = np.random.default_rng(0)
    batch, n, c = 3, 60, 4
    xy = rng.uniform(0, 80, size=(batch, n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, size=(batch, n, 2))], -1)
    scores = rng.uniform(0, 1, size=(batch, c, n)) ** 3
    scores[1] *= 0.01  # image 1: nothing above the threshold
    args = dict(score_threshold=0.05, nms_top_k=30, keep_top_k=25, nms_threshold=0.45)
    out, num = multiclass_nms(
        paddle.to_tensor(boxes, "float32"), paddle.to_tensor(scores, "float32"), **args
    )
    out, num = out.numpy(), num.numpy()
    assert num[1] == 0 and out.shape == (num.sum(), 6)
    start = 0
    for b in range(batch):
        ref = reference_nms(boxes[b].astype(np.float32), scores[b].astype(np.float32), **args)
        np.testing.assert_allclose(out[start : start + num[b]], ref, rtol=1e-5, atol=1e-5)
        start += num[b]


def test_zero_boxes():
    out, num = multiclass_nms(paddle.zeros([2, 0, 4]), paddle.zeros([2, 3, 0]))
    assert tuple(out.shape) == (0, 6) and num.numpy().tolist() == [0, 0]
    # boxes present but every score below the threshold
    out, num = multiclass_nms(paddle.ones([1, 5, 4]), paddle.zeros([1, 3, 5]))
    assert tuple(out.shape) == (0, 6) and num.numpy().tolist() == [0]
