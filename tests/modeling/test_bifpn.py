"""BiFPN: PaddleDetection 2.x parameter layout, fast normalised fusion against a NumPy
reference (identity convs, chosen weights), the separable conv, and a fusion weight that learns."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppdet.modeling.necks import BiFPN
from ppdet.modeling.necks.bifpn import SeparableConvLayer
from tests.modeling.pyramid_refs import (
    conv_ref,
    maxpool3s2_ref,
    nearest_ref,
    odd_feats,
    set_value,
)

C = 2
EPS = 1e-4


def test_names_and_shapes_follow_paddledet_2x():
    neck = BiFPN([40, 112, 320], 64, num_stacks=2)
    shapes = {k: list(v.shape) for k, v in neck.state_dict().items()}
    bn = ("weight", "bias", "_mean", "_variance")
    expected = {}
    for i, c in enumerate([40, 112, 320]):
        expected[f"lateral_convs.{i}.conv.weight"] = [64, c, 1, 1]
        expected.update({f"lateral_convs.{i}.norm.{p}": [64] for p in bn})
    expected["extra_convs.0.conv.weight"] = [64, 320, 1, 1]
    expected.update({f"extra_convs.0.norm.{p}": [64] for p in bn})
    for k in range(2):
        cell = f"bifpn_cells.{k}"
        expected[f"{cell}.up_weights"] = [4, 2]
        expected[f"{cell}.down_weights"] = [4, 3]
        for kind in ("conv_up", "conv_down"):
            for j in range(4):
                base = f"{cell}.{kind}.{j}"
                expected[f"{base}.depthwise_conv.weight"] = [64, 1, 3, 3]
                expected[f"{base}.pointwise_conv.weight"] = [64, 64, 1, 1]
                expected[f"{base}.pointwise_conv.bias"] = [64]
                expected.update({f"{base}.norm.{p}": [64] for p in bn})
    assert shapes == expected
    assert np.all(neck.bifpn_cells[0].up_weights.numpy() == 1.0)


def make_identity(neck: BiFPN) -> None:
    """Every conv the identity (1x1 lateral/extra, separable centre tap), biases 0."""
    for conv in [*neck.lateral_convs, *neck.extra_convs]:
        set_value(conv.conv.weight, np.eye(C)[:, :, None, None])
        set_value(conv.conv.bias, np.zeros(C))
    for cell in neck.bifpn_cells:
        for sep in [*cell.conv_up, *cell.conv_down]:
            dw = np.zeros((C, 1, 3, 3))
            dw[:, 0, 1, 1] = 1.0
            set_value(sep.depthwise_conv.weight, dw)
            set_value(sep.pointwise_conv.weight, np.eye(C)[:, :, None, None])
            set_value(sep.pointwise_conv.bias, np.zeros(C))


def bifpn_ref(levels, up_w, down_w):
    """One cell with identity convs: the fusion arithmetic only."""

    def norm(w):
        w = np.maximum(w, 0)
        return w / (w.sum() + EPS)

    top = len(levels) - 1
    td = [None] * len(levels)
    td[top] = levels[top]
    for i, level in enumerate(range(top - 1, -1, -1)):
        w = norm(up_w[i])
        up = nearest_ref(td[level + 1], *levels[level].shape[2:])
        td[level] = w[0] * levels[level] + w[1] * up
    outs = [td[0]]
    for i, level in enumerate(range(1, top + 1)):
        down = maxpool3s2_ref(outs[-1])
        if level == top:
            w = norm(down_w[i][:2])
            outs.append(w[0] * levels[level] + w[1] * down)
        else:
            w = norm(down_w[i])
            outs.append(w[0] * td[level] + w[1] * down + w[2] * levels[level])
    return outs


def test_fast_normalised_fusion_matches_numpy():
    neck = BiFPN([C, C, C], C, norm_type=None, act=None)
    make_identity(neck)
    rng = np.random.default_rng(0)
    up_w = rng.uniform(-0.5, 2.0, size=(4, 2))  # some negative: relu'd to 0
    up_w[0, 0] = -1.0
    down_w = rng.uniform(-0.5, 2.0, size=(4, 3))
    set_value(neck.bifpn_cells[0].up_weights, up_w)
    set_value(neck.bifpn_cells[0].down_weights, down_w)
    feats = odd_feats([C, C, C], size=(97, 131))
    x = [f.numpy() for f in feats]
    p6 = maxpool3s2_ref(x[2])
    levels = [*x, p6, maxpool3s2_ref(p6)]
    want = bifpn_ref(levels, up_w, down_w)
    got = neck(feats)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


def test_unweighted_fusion_is_a_sum():
    neck = BiFPN([C, C], C, [0.125, 0.0625], 0, use_weighted_fusion=False, norm_type=None, act=None)
    make_identity(neck)
    assert not any("weights" in k for k in neck.state_dict())
    feats = odd_feats([C, C], strides=(8, 16), size=(97, 131))
    a, b = (f.numpy() for f in feats)
    td0 = a + nearest_ref(b, *a.shape[2:])
    got = neck(feats)
    np.testing.assert_allclose(got[0].numpy(), td0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1].numpy(), b + maxpool3s2_ref(td0), rtol=1e-5, atol=1e-5)


def test_separable_conv_swish_depthwise_pointwise_norm():
    layer = SeparableConvLayer(C, norm_type=None, act="swish")
    rng = np.random.default_rng(1)
    dw, pw, b = rng.normal(size=(C, 1, 3, 3)), rng.normal(size=(C, C, 1, 1)), rng.normal(size=C)
    set_value(layer.depthwise_conv.weight, dw)
    set_value(layer.pointwise_conv.weight, pw)
    set_value(layer.pointwise_conv.bias, b)
    x = rng.normal(size=(2, C, 5, 7)).astype("float32")
    act = x / (1 + np.exp(-x))
    want = conv_ref(conv_ref(act, dw, groups=C), pw, b)
    np.testing.assert_allclose(layer(paddle.to_tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="unknown activation"):
        SeparableConvLayer(C, act="gelu")


def test_fusion_weights_learn():
    paddle.seed(0)
    neck = BiFPN([4, 4, 4], 4, num_stacks=1, norm_type=None)
    feats = odd_feats([4, 4, 4], size=(64, 64))
    loss = sum(o.mean() for o in neck(feats))
    loss.backward()
    cell = neck.bifpn_cells[0]
    assert np.abs(cell.up_weights.grad.numpy()).sum() > 0
    assert np.abs(cell.down_weights.grad.numpy()).sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="spatial scale per input"):
        BiFPN([4, 8], 4, spatial_scales=[0.125])
    with pytest.raises(ValueError, match="halve"):
        BiFPN([4, 8], 4, spatial_scales=[0.125, 0.03125])
    with pytest.raises(ValueError, match="num_stacks"):
        BiFPN([4, 8], 4, spatial_scales=[0.125, 0.0625], num_stacks=0)
