"""Sigmoid focal loss against the NumPy formula."""

import numpy as np
import paddle
import pytest

from ppdet.modeling.losses import FocalLoss, sigmoid_focal_loss


def numpy_focal(x, t, alpha, gamma):
    x = x.astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1.0
    return -alpha_t * (1 - p_t) ** gamma * np.log(p_t)


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (-1.0, 1.5)])
def test_matches_numpy(alpha, gamma):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (4, 7)).astype("float32")
    t = (rng.uniform(size=(4, 7)) < 0.3).astype("float32")
    ours = sigmoid_focal_loss(paddle.to_tensor(x), paddle.to_tensor(t), alpha, gamma, "none")
    np.testing.assert_allclose(ours.numpy(), numpy_focal(x, t, alpha, gamma), rtol=1e-5, atol=1e-7)
    total = sigmoid_focal_loss(paddle.to_tensor(x), paddle.to_tensor(t), alpha, gamma, "sum")
    np.testing.assert_allclose(float(total), numpy_focal(x, t, alpha, gamma).sum(), rtol=1e-5)


def test_hand_values():
    # logit 0 (p = 0.5), target 1: 0.25 * 0.5^2 * log 2; target 0: 0.75 * 0.5^2 * log 2
    loss = sigmoid_focal_loss(paddle.zeros([2]), paddle.to_tensor([1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0625 * np.log(2), 0.1875 * np.log(2)], rtol=1e-6)


def test_layer_weight_normalizer_and_stable_gradients():
    x = paddle.to_tensor([[20.0, -20.0, 0.0]], stop_gradient=False)
    t = paddle.to_tensor([[0.0, 1.0, 1.0]])
    weight = paddle.to_tensor([[1.0, 1.0, 0.0]])  # last element ignored
    loss = FocalLoss(alpha=0.25, gamma=2.0, loss_weight=2.0)(x, t, normalizer=4.0, weight=weight)
    expected = 2.0 * numpy_focal(np.array([20.0, -20.0]), np.array([0.0, 1.0]), 0.25, 2.0).sum() / 4
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    loss.backward()
    assert np.isfinite(x.grad.numpy()).all() and x.grad.numpy()[0, 2] == 0
    with pytest.raises(ValueError, match="use_sigmoid"):
        FocalLoss(use_sigmoid=False)
