"""Delta box coder: hand values, round trips, and numbers recorded from PaddleDetection 2.6.0."""

import math

import numpy as np
import paddle
import pytest

from ppdet.modeling.coders import DEFAULT_CLIP_RATIO, decode_deltas, encode_deltas


def t(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


RCNN = [10.0, 10.0, 5.0, 5.0]

# Recorded from paddledet 2.6.0 (bbox_utils.bbox2delta / delta2bbox), float32.
BOXES = [[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 16.0, 16.0], [100.5, 30.25, 180.0, 60.0]]
DELTAS = [  # class-specific: 2 groups of (dx, dy, dw, dh) per box
    [0.5, -1.0, 2.0, -3.0, 3.0, 4.0, 30.0, 21.0],
    [0.0, 0.0, 0.0, 0.0, -2.5, 1.5, -10.0, 25.0],
    [1.2, -0.7, 0.3, 0.9, 0.1, 0.2, 50.0, -50.0],
]
TARGETS = [[12.0, 18.0, 60.0, 90.0], [4.0, -4.0, 36.0, 12.0], [90.0, 35.0, 200.0, 50.0]]
ORACLE_DEC_RCNN = [
    [2.1635055541992188, 30.047534942626953, 61.83649444580078, 73.95246887207031],
    [-1208.0001220703125, -2408.000244140625, 1292.0001220703125, 2592.000244140625],
    [0.0, 0.0, 16.0, 16.0],
    [2.9173178672790527, -489.60003662109375, 5.082682132720947, 510.4000244140625],
    [107.58198547363281, 25.2338924407959, 191.9980010986328, 60.851104736328125],
    [-2343.330322265625, 45.71932601928711, 2625.420166015625, 45.72067642211914],
]
ORACLE_DEC_RPN = [
    [-97.7811279296875, -21.99148178100586, 197.7811279296875, -18.00851821899414],
    [-1100.0001220703125, -2120.000244140625, 1400.0001220703125, 2880.000244140625],
    [0.0, 0.0, 16.0, 16.0],
    [-32.000362396240234, -468.0000305175781, -31.999637603759766, 532.0],
    [181.99310302734375, -12.286596298217773, 289.306884765625, 60.8865966796875],
    [-2336.17529296875, 51.07500076293945, 2632.5751953125, 51.07500076293945],
]
ORACLE_DEC_RCNN_MAX = [  # max_shape (h, w) = (90, 120)
    [2.1635055541992188, 30.047534942626953, 61.83649444580078, 73.95246887207031],
    [0.0, 0.0, 120.0, 90.0],
    [0.0, 0.0, 16.0, 16.0],
    [2.9173178672790527, 0.0, 5.082682132720947, 90.0],
    [107.58198547363281, 25.2338924407959, 120.0, 60.851104736328125],
    [0.0, 45.71932601928711, 120.0, 45.72067642211914],
]
ORACLE_ENC_RCNN = [
    [1.5, -0.75, 0.9116079807281494, -0.5268027186393738],
    [7.5, -2.5, 3.465735912322998, 0.0],
    [0.597484290599823, -0.8823529481887817, 1.6236166954040527, -3.4238944053649902],
]


def test_encode_hand_values():
    src = t([[0, 0, 16, 16]])  # centre (8, 8), 16 x 16
    dst = t([[4, -4, 36, 12]])  # centre (20, 4), 32 x 16
    np.testing.assert_allclose(
        encode_deltas(src, dst).numpy(), [[12 / 16, -4 / 16, math.log(2), 0.0]], rtol=1e-6
    )
    np.testing.assert_allclose(
        encode_deltas(src, dst, RCNN).numpy(), [[7.5, -2.5, 5 * math.log(2), 0.0]], rtol=1e-6
    )


def test_decode_hand_values():
    box = t([[10, 20, 50, 100]])  # centre (30, 60), 40 x 80
    # shift by half a width right, a quarter height up, double the width, keep the height
    deltas = t([[0.5, -0.25, math.log(2), 0.0]])
    np.testing.assert_allclose(decode_deltas(deltas, box).numpy(), [[10, 0, 90, 80]], rtol=1e-6)
    # the same move under R-CNN weights
    np.testing.assert_allclose(
        decode_deltas(deltas * t(RCNN), box, RCNN).numpy(), [[10, 0, 90, 80]], rtol=1e-6
    )
    # zero deltas give the box back
    np.testing.assert_array_equal(decode_deltas(t([[0, 0, 0, 0]]), box).numpy(), box.numpy())


@pytest.mark.parametrize("weights", [[1, 1, 1, 1], RCNN, [20, 20, 10, 10], [0.5, 2, 3, 0.25]])
@pytest.mark.parametrize("legacy", [False, True])
def test_round_trip(weights, legacy):
    rng = np.random.RandomState(0)
    xy = rng.uniform(-50, 500, (64, 2))
    src = np.concatenate([xy, xy + rng.uniform(2, 300, (64, 2))], 1)
    xy2 = xy + rng.uniform(-40, 40, (64, 2))
    dst = np.concatenate([xy2, xy2 + rng.uniform(2, 300, (64, 2))], 1)
    deltas = encode_deltas(t(src), t(dst), weights, legacy_plus_one=legacy)
    back = decode_deltas(deltas, t(src), weights, legacy_plus_one=legacy)
    np.testing.assert_allclose(back.numpy(), dst, rtol=1e-5, atol=1e-3)


def test_recorded_2x_numbers():
    boxes, deltas = t(BOXES), t(DELTAS)
    dec = decode_deltas(deltas, boxes, RCNN)
    assert dec.shape == [3, 8]  # class-specific layout kept: [N, 4C]
    np.testing.assert_allclose(dec.numpy().reshape(-1, 4), ORACLE_DEC_RCNN, rtol=1e-6, atol=1e-4)
    dec = decode_deltas(deltas, boxes, [1, 1, 1, 1]).numpy().reshape(-1, 4)
    np.testing.assert_allclose(dec, ORACLE_DEC_RPN, rtol=1e-6, atol=1e-4)
    dec = decode_deltas(deltas, boxes, RCNN, max_shape=(90, 120)).numpy().reshape(-1, 4)
    np.testing.assert_allclose(dec, ORACLE_DEC_RCNN_MAX, rtol=1e-6, atol=1e-4)
    enc = encode_deltas(boxes, t(TARGETS), RCNN).numpy()
    np.testing.assert_allclose(enc, ORACLE_ENC_RCNN, rtol=1e-6, atol=1e-6)


def test_clip_of_dw_dh():
    box = t([[0, 0, 16, 8]])
    huge = t([[0, 0, 100.0, 100.0]])
    out = decode_deltas(huge, box).numpy()[0]
    # w, h clipped to 1000/16 = 62.5 times: 1000 x 500, centred on (8, 4)
    assert DEFAULT_CLIP_RATIO == pytest.approx(math.log(62.5))
    np.testing.assert_allclose(out, [8 - 500, 4 - 250, 8 + 500, 4 + 250], rtol=1e-5)
    # with weights the clip applies after dividing: 5 * 4 = 20 -> 4 is below the clip
    out = decode_deltas(t([[0, 0, 20.0, 20.0]]), box, RCNN).numpy()[0]
    e4 = math.exp(4)
    np.testing.assert_allclose(out, [8 - 8 * e4, 4 - 4 * e4, 8 + 8 * e4, 4 + 4 * e4], rtol=1e-5)
    # only an upper bound: a very negative dw shrinks the box to (almost) nothing
    out = decode_deltas(t([[0, 0, -100.0, 0]]), box).numpy()[0]
    np.testing.assert_allclose(out, [8, 0, 8, 8], atol=1e-5)
    # clip_ratio=None (SSD) lets the box grow exp(10) times
    out = decode_deltas(t([[0, 0, 10.0, 0]]), box, clip_ratio=None).numpy()[0]
    np.testing.assert_allclose(out[2] - out[0], 16 * math.exp(10), rtol=1e-5)


def test_legacy_plus_one_hand_values():
    # [0, 0, 15, 15] is 16 pixels wide under the +1 convention: centre (8, 8)
    box = t([[0, 0, 15, 15]])
    np.testing.assert_allclose(
        decode_deltas(t([[0, 0, 0, 0]]), box, legacy_plus_one=True).numpy(), box.numpy()
    )
    # dx = 1 moves by one (16-pixel) width; dw = log 2 gives a 32-pixel box: 32 - 1 = 31 span
    out = decode_deltas(t([[1.0, 0, math.log(2), 0]]), box, legacy_plus_one=True).numpy()
    np.testing.assert_allclose(out, [[8, 0, 39, 15]], rtol=1e-6)
    enc = encode_deltas(box, t([[8, 0, 39, 15]]), legacy_plus_one=True).numpy()
    np.testing.assert_allclose(enc, [[1.0, 0, math.log(2), 0]], atol=1e-6)


def test_legacy_plus_one_matches_paddle_box_coder():
    """fluid's box_coder(box_normalized=False) decode, still in paddle.vision.ops."""
    box_coder = getattr(paddle.vision.ops, "box_coder", None)
    if box_coder is None:
        pytest.skip("paddle.vision.ops.box_coder is gone from this Paddle")
    boxes, deltas = t(BOXES), t(DELTAS)[:, :4] * 0.5
    for normalized in (False, True):
        ref = box_coder(
            boxes,
            [0.1, 0.1, 0.2, 0.2],
            deltas.unsqueeze(1),
            code_type="decode_center_size",
            box_normalized=normalized,
            axis=1,
        ).numpy()[:, 0]
        out = decode_deltas(deltas, boxes, RCNN, clip_ratio=None, legacy_plus_one=not normalized)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-4)


def test_empty_inputs():
    assert encode_deltas(paddle.zeros([0, 4]), paddle.zeros([0, 4])).shape == [0, 4]
    assert decode_deltas(paddle.zeros([0, 4]), paddle.zeros([0, 4])).shape == [0, 4]
    out = decode_deltas(paddle.zeros([0, 12]), paddle.zeros([0, 4]), RCNN, max_shape=(10, 20))
    assert out.shape == [0, 12]
    assert decode_deltas(paddle.zeros([2, 0, 8]), paddle.zeros([2, 0, 4])).shape == [2, 0, 8]


def test_leading_dims_and_per_image_max_shape():
    rng = np.random.RandomState(1)
    xy = rng.uniform(0, 50, (2, 5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (2, 5, 2))], -1)
    deltas = rng.normal(0, 1, (2, 5, 8))
    max_shape = t([[[40, 60]], [[70, 30]]])  # [B, 1, 2] (h, w) per image
    out = decode_deltas(t(deltas), t(boxes), RCNN, max_shape=max_shape).numpy()
    assert out.shape == (2, 5, 8)
    for b, (h, w) in enumerate([(40, 60), (70, 30)]):
        ref = decode_deltas(t(deltas[b]), t(boxes[b]), RCNN, max_shape=(h, w)).numpy()
        np.testing.assert_allclose(out[b], ref, rtol=1e-6)
    # one set of reference boxes broadcast over a batch of deltas
    out = decode_deltas(t(deltas[:, :, :4]), t(boxes[0])).numpy()
    ref = decode_deltas(t(deltas[1, :, :4]), t(boxes[0])).numpy()
    np.testing.assert_allclose(out[1], ref, rtol=1e-6)
    enc = encode_deltas(t(boxes), t(boxes[:1]))  # [2, 5, 4] vs [1, 5, 4]
    assert enc.shape == [2, 5, 4]
    np.testing.assert_allclose(enc.numpy()[0], 0, atol=1e-6)


def test_dtype_and_gradient():
    boxes = t(BOXES, "float64")
    out = decode_deltas(t(DELTAS, "float64"), boxes, RCNN)
    assert out.dtype == paddle.float64
    assert encode_deltas(boxes, t(TARGETS, "float64")).dtype == paddle.float64
    deltas = t(DELTAS)
    deltas.stop_gradient = False
    decode_deltas(deltas, t(BOXES), RCNN).sum().backward()
    grad = deltas.grad.numpy()
    assert np.isfinite(grad).all()
    # x1 + x2 = 2 * centre: d/d(dx) = 2 * w / 10; the clipped dw/dh have zero gradient
    np.testing.assert_allclose(grad[0, 0], 2 * 40 / 10, rtol=1e-6)
    assert grad[0, 6] == 0 and grad[0, 7] == 0  # 30 / 5 and 21 / 5 are above log(62.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="weights"):
        decode_deltas(t(DELTAS), t(BOXES), [1, 1, 1])
    with pytest.raises(ValueError, match="weights"):
        encode_deltas(t(BOXES), t(TARGETS), [1, 0, 1, 1])
    with pytest.raises(ValueError, match="multiple of 4"):
        decode_deltas(t([[0, 0, 0, 0, 0, 0]]), t([[0, 0, 1, 1]]))
