"""Norm layers (ppdet/modeling/layers/norms.py) against NumPy references, train and eval."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppdet.engine.optim import is_norm_layer
from ppdet.modeling.layers.conv_norm import ConvNormLayer, MobileConvNormLayer
from ppdet.modeling.layers.norms import NORM_TYPES, build_norm

EPS = 1e-5
C = 8
RTOL, ATOL = 1e-4, 1e-5
BN_FAMILY = ("bn", "sync_bn", "affine_channel")


@pytest.fixture
def x() -> np.ndarray:
    # non-zero mean and unequal channel scales, so every statistic matters
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 2.0, size=(1, C, 1, 1))
    return (rng.normal(size=(2, C, 5, 5)) * scale + 0.3).astype("float32")


def _set(layer: paddle.nn.Layer, seed: int = 1, **fixed: np.ndarray) -> dict[str, np.ndarray]:
    """Give every float tensor of ``layer`` a random value (variances positive); returns them."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, t in layer.state_dict().items():
        shape = tuple(t.shape)
        if name in fixed:
            v = fixed[name]
        elif name == "_variance":
            v = rng.uniform(0.5, 2.0, size=shape)
        else:
            v = rng.normal(size=shape)
        values[name] = np.asarray(v, dtype="float32")
    layer.set_state_dict({k: paddle.to_tensor(v) for k, v in values.items()})
    return values


def _run(layer: paddle.nn.Layer, x: np.ndarray, training: bool) -> np.ndarray:
    layer.train() if training else layer.eval()
    return layer(paddle.to_tensor(x)).numpy()


def _state(layer: paddle.nn.Layer) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def _pc(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1, 1)


# ------------------------------------------------------------------ NumPy references
def ref_affine(x, mean, var, w, b):
    return (x - _pc(mean)) / np.sqrt(_pc(var) + EPS) * _pc(w) + _pc(b)


def ref_bn_train(x, w, b):
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    return ref_affine(x, mean, var, w, b), mean, var


def ref_gn(x, groups, w, b):
    n = x.shape[0]
    g = x.reshape(n, groups, -1)
    y = (g - g.mean(axis=2, keepdims=True)) / np.sqrt(g.var(axis=2, keepdims=True) + EPS)
    return y.reshape(x.shape) * _pc(w) + _pc(b)


def ref_group_std(x, groups):
    n, c = x.shape[:2]
    std = np.sqrt(x.reshape(n, groups, -1).var(axis=2) + EPS)  # [N, G]
    return np.repeat(std, c // groups, axis=1).reshape(n, c, 1, 1)


def ref_evonorm_s0(x, groups, v1, w, b):
    sig = 1.0 / (1.0 + np.exp(-_pc(v1) * x))
    return x * sig / ref_group_std(x, groups) * _pc(w) + _pc(b)


def ref_evonorm_b0(x, batch_var, v1, w, b):
    inst_std = np.sqrt(x.var(axis=(2, 3), keepdims=True) + EPS)
    den = np.maximum(np.sqrt(_pc(batch_var) + EPS), _pc(v1) * x + inst_std)
    return x / den * _pc(w) + _pc(b)


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def ref_sn(x, p, bn_mean=None, bn_var=None):
    """Switchable Norm; bn_mean/bn_var None: batch statistics (train)."""
    mean_in, var_in = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    mean_ln, var_ln = x.mean(axis=(1, 2, 3), keepdims=True), x.var(axis=(1, 2, 3), keepdims=True)
    if bn_mean is None:
        bn_mean, bn_var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    wm, wv = softmax(p["mean_weight"]), softmax(p["var_weight"])
    mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * _pc(bn_mean)
    var = wv[0] * var_in + wv[1] * var_ln + wv[2] * _pc(bn_var)
    return (x - mean) / np.sqrt(var + EPS) * _pc(p["weight"]) + _pc(p["bias"]), bn_mean, bn_var


# ------------------------------------------------------------------ BN family
@pytest.mark.parametrize("norm_type", ["bn", "sync_bn"])
def test_bn_train_eval_and_running_stats(x, norm_type):
    layer = build_norm(C, norm_type)
    p = _set(layer)
    y, mean, var = ref_bn_train(x, p["weight"], p["bias"])
    np.testing.assert_allclose(_run(layer, x, True), y, rtol=RTOL, atol=ATOL)
    run_mean = 0.9 * p["_mean"] + 0.1 * mean
    run_var = 0.9 * p["_variance"] + 0.1 * var  # biased batch variance
    np.testing.assert_allclose(layer._mean.numpy(), run_mean, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer._variance.numpy(), run_var, rtol=RTOL, atol=ATOL)
    y_eval = ref_affine(x, run_mean, run_var, p["weight"], p["bias"])
    np.testing.assert_allclose(_run(layer, x, False), y_eval, rtol=RTOL, atol=ATOL)


def test_sync_bn_on_cpu_equals_bn(x):
    bn, sync = build_norm(C, "bn"), build_norm(C, "sync_bn")
    assert isinstance(sync, paddle.nn.SyncBatchNorm) and not sync.syncs()
    sync.set_state_dict(bn.state_dict())
    xt_bn, xt_sync = (
        paddle.to_tensor(x, stop_gradient=False),
        paddle.to_tensor(x, stop_gradient=False),
    )
    bn.train(), sync.train()
    y_bn, y_sync = bn(xt_bn), sync(xt_sync)
    np.testing.assert_allclose(y_sync.numpy(), y_bn.numpy(), rtol=1e-6, atol=1e-6)
    (y_bn * y_bn).sum().backward()
    (y_sync * y_sync).sum().backward()
    np.testing.assert_allclose(xt_sync.grad.numpy(), xt_bn.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sync.weight.grad.numpy(), bn.weight.grad.numpy(), rtol=1e-5)
    for k, v in _state(bn).items():
        np.testing.assert_allclose(_state(sync)[k], v, rtol=1e-6)
    np.testing.assert_allclose(_run(sync, x, False), _run(bn, x, False), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "norm_type,freeze",
    [("bn", True), ("sync_bn", True), ("affine_channel", False), ("affine_channel", True)],
)
def test_frozen_statistics(x, norm_type, freeze):
    """Frozen BN / AffineChannel: stored statistics in train and eval, never updated;
    with freeze also no gradient (or learning rate) on weight and bias."""
    layer = build_norm(C, norm_type, freeze_norm=freeze)
    p = _set(layer)
    expected = ref_affine(x, p["_mean"], p["_variance"], p["weight"], p["bias"])
    for training in (True, False, True):
        layer.train() if training else layer.eval()
        xt = paddle.to_tensor(x, stop_gradient=False)
        y = layer(xt)
        np.testing.assert_allclose(y.numpy(), expected, rtol=RTOL, atol=ATOL)
        y.sum().backward()
        # the input still receives the gradient of the affine map: weight / std
        grad = np.broadcast_to(_pc(p["weight"] / np.sqrt(p["_variance"] + EPS)), x.shape)
        np.testing.assert_allclose(xt.grad.numpy(), grad, rtol=RTOL, atol=ATOL)
    for k, v in _state(layer).items():
        np.testing.assert_array_equal(v, p[k])  # statistics (and weights) unchanged
    for param in (layer.weight, layer.bias):
        assert param.stop_gradient is freeze
        assert (param.grad is None) is freeze
        assert param.optimize_attr["learning_rate"] == (0.0 if freeze else 1.0)


def test_frozen_bn_in_an_optimizer_step_stays_put(x):
    conv = ConvNormLayer(C, C, 3, act="relu", freeze_norm=True)
    before = _set(conv.batch_norm)
    opt = paddle.optimizer.Momentum(
        0.1, parameters=[p for p in conv.parameters() if not p.stop_gradient]
    )
    conv.train()
    conv(paddle.to_tensor(x)).mean().backward()
    opt.step()
    for k, v in _state(conv.batch_norm).items():
        np.testing.assert_array_equal(v, before[k])


def test_bn_family_checkpoints_are_interchangeable(x):
    """A BN state_dict loads into every BN-family layer; in eval they all compute the same."""
    bn = build_norm(C, "bn")
    _set(bn)
    ref = _run(bn, x, False)
    for norm_type in BN_FAMILY:
        for freeze in (False, True):
            layer = build_norm(C, norm_type, freeze_norm=freeze)
            assert sorted(layer.state_dict()) == ["_mean", "_variance", "bias", "weight"]
            layer.set_state_dict(bn.state_dict())
            np.testing.assert_allclose(_run(layer, x, False), ref, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ GN, EvoNorm, SN
def test_group_norm(x):
    layer = build_norm(C, "gn", num_groups=4)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    p = _set(layer)
    y = ref_gn(x, 4, p["weight"], p["bias"])
    for training in (True, False):
        np.testing.assert_allclose(_run(layer, x, training), y, rtol=RTOL, atol=ATOL)


def test_evonorm_s0(x):
    layer = build_norm(C, "evonorm_s0", num_groups=2)
    assert sorted(layer.state_dict()) == ["bias", "v1", "weight"]  # batch independent
    assert layer.fuses_activation
    p = _set(layer)
    y = ref_evonorm_s0(x, 2, p["v1"], p["weight"], p["bias"])
    for training in (True, False):
        np.testing.assert_allclose(_run(layer, x, training), y, rtol=RTOL, atol=ATOL)
    # per-sample: the first image's output does not depend on the second image
    np.testing.assert_allclose(_run(layer, x[:1], True), y[:1], rtol=RTOL, atol=ATOL)


def test_evonorm_s0_linear_variant(x):
    layer = build_norm(C, "evonorm_s0", num_groups=4, nonlinear=False)
    assert sorted(layer.state_dict()) == ["bias", "weight"] and not layer.fuses_activation
    p = _set(layer)
    y = x / ref_group_std(x, 4) * _pc(p["weight"]) + _pc(p["bias"])
    np.testing.assert_allclose(_run(layer, x, True), y, rtol=RTOL, atol=ATOL)


def test_evonorm_b0_train_running_variance_and_eval(x):
    layer = build_norm(C, "evonorm_b0")  # no groups: any channel count
    assert sorted(layer.state_dict()) == ["_variance", "bias", "v1", "weight"]
    p = _set(layer)
    batch_var = x.var(axis=(0, 2, 3))
    y = ref_evonorm_b0(x, batch_var, p["v1"], p["weight"], p["bias"])
    np.testing.assert_allclose(_run(layer, x, True), y, rtol=RTOL, atol=ATOL)
    running = 0.9 * p["_variance"] + 0.1 * batch_var
    np.testing.assert_allclose(layer._variance.numpy(), running, rtol=RTOL, atol=ATOL)
    y_eval = ref_evonorm_b0(x, running, p["v1"], p["weight"], p["bias"])
    np.testing.assert_allclose(_run(layer, x, False), y_eval, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer._variance.numpy(), running, rtol=RTOL, atol=ATOL)
    # both branches of the max are taken somewhere in this input
    inst = np.sqrt(x.var(axis=(2, 3), keepdims=True) + EPS)
    chooses_batch = np.sqrt(_pc(batch_var) + EPS) > _pc(p["v1"]) * x + inst
    assert chooses_batch.any() and not chooses_batch.all()


def test_evonorm_b0_frozen_uses_running_variance(x):
    layer = build_norm(C, "evonorm_b0", freeze_norm=True)
    p = _set(layer)
    y = ref_evonorm_b0(x, p["_variance"], p["v1"], p["weight"], p["bias"])
    np.testing.assert_allclose(_run(layer, x, True), y, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(layer._variance.numpy(), p["_variance"])
    assert all(param.stop_gradient for param in layer.parameters())


def test_switchable_norm_train_running_stats_and_eval(x):
    layer = build_norm(C, "sn")
    names = ["_mean", "_variance", "bias", "mean_weight", "var_weight", "weight"]
    assert sorted(layer.state_dict()) == names
    p = _set(layer)
    y, bn_mean, bn_var = ref_sn(x, p)
    np.testing.assert_allclose(_run(layer, x, True), y, rtol=RTOL, atol=1e-4)
    run_mean = 0.9 * p["_mean"] + 0.1 * bn_mean
    run_var = 0.9 * p["_variance"] + 0.1 * bn_var
    np.testing.assert_allclose(layer._mean.numpy(), run_mean, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer._variance.numpy(), run_var, rtol=RTOL, atol=ATOL)
    y_eval, _, _ = ref_sn(x, p, run_mean, run_var)
    np.testing.assert_allclose(_run(layer, x, False), y_eval, rtol=RTOL, atol=1e-4)


def test_switchable_norm_importance_weights_learn(x):
    layer = build_norm(C, "sn")
    layer.train()
    y = layer(paddle.to_tensor(x))
    (
        y * paddle.to_tensor(np.random.default_rng(2).normal(size=x.shape).astype("float32"))
    ).sum().backward()
    for param in (layer.mean_weight, layer.var_weight, layer.weight, layer.bias):
        assert param.grad is not None and np.abs(param.grad.numpy()).sum() > 0


def test_switchable_norm_frozen(x):
    layer = build_norm(C, "sn", freeze_norm=True)
    p = _set(layer)
    y, _, _ = ref_sn(x, p, p["_mean"], p["_variance"])
    np.testing.assert_allclose(_run(layer, x, True), y, rtol=RTOL, atol=1e-4)
    for k, v in _state(layer).items():
        np.testing.assert_array_equal(v, p[k])


# ------------------------------------------------------------------ factory
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_norm_decay_and_learning_rate_attributes(norm_type):
    for decay, freeze in ((0.0, False), (1e-4, True)):
        layer = build_norm(C, norm_type, norm_decay=decay, freeze_norm=freeze, num_groups=4)
        # Paddle's BN keeps its statistics as (non-trainable) parameters: leave them out
        params = [p for n, p in layer.named_parameters() if n not in ("_mean", "_variance")]
        assert params and is_norm_layer(layer)  # the optimizer's no_weight_decay_on_norm sees it
        for param in params:
            assert isinstance(param.regularizer, paddle.regularizer.L2Decay)
            assert param.regularizer._coeff == pytest.approx(decay)
            assert param.optimize_attr["learning_rate"] == (0.0 if freeze else 1.0)
            assert param.stop_gradient is freeze


def test_unknown_norm_type_and_indivisible_groups():
    with pytest.raises(ValueError, match="unknown norm_type 'ln'"):
        build_norm(C, "ln")
    with pytest.raises(ValueError, match="num_groups=3"):
        build_norm(C, "gn", num_groups=3)
    with pytest.raises(ValueError, match="num_groups=32"):
        build_norm(C, "evonorm_s0")  # 8 channels, default 32 groups
    with pytest.raises(ValueError, match="unknown norm_type"):
        ConvNormLayer(4, C, 3, norm_type="batchnorm")


def test_positional_signature_is_backward_compatible():
    layer = build_norm(C, "bn", 0.0, False)
    assert isinstance(layer, paddle.nn.BatchNorm2D)


# ------------------------------------------------------------------ ConvNormLayer
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_conv_norm_layer_forward_backward(x, norm_type):
    layer = ConvNormLayer(C, C, 3, stride=2, act="relu", norm_type=norm_type, num_groups=4)
    assert "batch_norm" in dict(layer.named_sublayers())
    layer.train()
    y = layer(paddle.to_tensor(x))
    assert tuple(y.shape) == (2, C, 3, 3) and np.isfinite(y.numpy()).all()
    fused = norm_type.startswith("evonorm")
    assert (layer.act is None) is fused  # EvoNorm is the activation: no ReLU after it
    if fused:
        assert (y.numpy() < 0).any()  # swish-like / unrectified outputs go below zero
    else:
        assert (y.numpy() >= 0).all()  # ReLU applied
    (y * y).mean().backward()
    grad = layer.conv.weight.grad
    assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0
    layer.eval()
    assert np.isfinite(layer(paddle.to_tensor(x)).numpy()).all()


def test_conv_norm_layer_without_activation_gets_linear_evonorm(x):
    layer = MobileConvNormLayer(C, C, 1, act=None, norm_type="evonorm_b0")
    norm = layer._batch_norm
    assert not norm.nonlinear and "v1" not in norm.state_dict()
    norm_in = layer._conv(paddle.to_tensor(x)).numpy()
    p = _set(norm, seed=3)
    layer.train()
    y = norm_in / np.sqrt(_pc(norm_in.var(axis=(0, 2, 3))) + EPS) * _pc(p["weight"]) + _pc(
        p["bias"]
    )
    np.testing.assert_allclose(layer(paddle.to_tensor(x)).numpy(), y, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "norm_type", ["sync_bn", "affine_channel", "evonorm_s0", "evonorm_b0", "sn"]
)
def test_project_norms_export_with_dynamic_shapes(x, norm_type):
    """paddle.jit.to_static (the export path) gives the eval outputs, any batch and size."""
    layer = build_norm(C, norm_type, num_groups=4)
    _set(layer)
    layer.eval()
    inputs = (x, x[:1, :, :3, :4])
    expected = [layer(paddle.to_tensor(inp)).numpy() for inp in inputs]  # before conversion
    spec = [paddle.static.InputSpec([None, C, None, None], "float32")]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    for inp, exp in zip(inputs, expected, strict=True):
        np.testing.assert_allclose(static(paddle.to_tensor(inp)).numpy(), exp, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ group counts, eps, no norm
@pytest.mark.parametrize(
    "channels,requested,expected",
    [(256, 32, 32), (64, 32, 32), (88, 32, 22), (40, 32, 20), (7, 32, 7), (96, 16, 16), (1, 32, 1)],
)
def test_fit_num_groups(channels, requested, expected):
    from ppdet.modeling.layers.norms import fit_num_groups

    assert fit_num_groups(channels, requested) == expected
    assert channels % expected == 0


@pytest.mark.parametrize("channels", [64, 88, 256])
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_every_norm_builds_for_neck_widths(channels, norm_type):
    """64 (EfficientDet-D0), 88 (D1) and 256 (FPN) channels with any norm of a neck or head."""
    from ppdet.modeling.layers.conv_norm import ConvNorm
    from ppdet.modeling.layers.norms import fit_num_groups

    layer = ConvNorm(
        8, channels, 3, act="relu", norm_type=norm_type, num_groups=fit_num_groups(channels)
    )
    y = layer(paddle.ones([2, 8, 5, 5]) * paddle.arange(25, dtype="float32").reshape([1, 1, 5, 5]))
    assert tuple(y.shape) == (2, channels, 5, 5) and np.isfinite(y.numpy()).all()


def test_build_norm_eps_and_momentum(x):
    layer = build_norm(C, "bn", eps=1e-3, momentum=0.99)
    assert layer._epsilon == pytest.approx(1e-3) and layer._momentum == pytest.approx(0.99)
    layer.train()
    layer(paddle.to_tensor(x))
    # running mean after one step: 0.99 * 0 + 0.01 * batch mean
    np.testing.assert_allclose(
        layer._mean.numpy(), 0.01 * x.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6
    )
    layer.eval()
    # eval with the running stats and eps 1e-3
    mean, var = layer._mean.numpy(), layer._variance.numpy()
    np.testing.assert_allclose(
        layer(paddle.to_tensor(x)).numpy(),
        (x - _pc(mean)) / np.sqrt(_pc(var) + 1e-3),
        rtol=RTOL,
        atol=ATOL,
    )
    gn = build_norm(C, "gn", num_groups=4, eps=0.5)
    g = x.reshape(2, 4, -1)
    ref = (
        (g - g.mean(axis=2, keepdims=True)) / np.sqrt(g.var(axis=2, keepdims=True) + 0.5)
    ).reshape(x.shape)
    np.testing.assert_allclose(gn(paddle.to_tensor(x)).numpy(), ref, rtol=RTOL, atol=ATOL)


def test_conv_norm_without_norm_has_bias_and_swish(x):
    from ppdet.modeling.layers.conv_norm import ConvNorm

    layer = ConvNorm(C, 4, 1, act="swish", norm_type=None)
    assert sorted(layer.state_dict()) == ["conv.bias", "conv.weight"]
    assert np.all(layer.conv.bias.numpy() == 0)
    w = np.random.default_rng(2).normal(size=(4, C, 1, 1)).astype("float32")
    b = np.array([0.5, -0.5, 1.0, 0.0], "float32")
    layer.set_state_dict({"conv.weight": paddle.to_tensor(w), "conv.bias": paddle.to_tensor(b)})
    z = np.einsum("oc,bchw->bohw", w[:, :, 0, 0], x) + _pc(b)
    np.testing.assert_allclose(
        layer(paddle.to_tensor(x)).numpy(), z / (1 + np.exp(-z)), rtol=RTOL, atol=ATOL
    )
    named = ConvNorm(C, 4, 3, norm_type="gn", num_groups=2)
    assert sorted(named.state_dict()) == ["conv.weight", "norm.bias", "norm.weight"]
