"""PConvFPN / PConvModule: the three-kernel pyramid convolution against NumPy, the integrated
norm (statistics over all levels) against NumPy, names and stacking."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppdet.modeling.necks import PConvFPN
from ppdet.modeling.necks.pconv import PConvModule
from tests.modeling.pyramid_refs import bilinear_align_corners_ref, conv_ref, odd_feats, set_value

C = 3
SIZE = (97, 131)
STRIDES = (8, 16, 32, 64, 128)


def pyramid(seed=0):
    return odd_feats([C] * 5, strides=STRIDES, size=SIZE, seed=seed)


def randomise(module: PConvModule, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    values = {}
    for name in ("conv_same", "conv_down", "conv_up"):
        conv = getattr(module, name)
        w = rng.normal(scale=0.4, size=(C, C, 3, 3))
        set_value(conv.weight, w)
        b = None
        if conv.bias is not None:
            b = rng.normal(scale=0.1, size=C)
            set_value(conv.bias, b)
        values[name] = (w, b)
    return values


def pconv_ref(maps, p):
    """y_l = conv_same(x_l) + conv_down(x_{l-1}, stride 2) + bilinear_ac(conv_up(x_{l+1}))."""
    outs = []
    for level, x in enumerate(maps):
        y = conv_ref(x, *p["conv_same"])
        if level > 0:
            y = y + conv_ref(maps[level - 1], *p["conv_down"], stride=2)
        if level < len(maps) - 1:
            up = conv_ref(maps[level + 1], *p["conv_up"])
            y = y + bilinear_align_corners_ref(up, y.shape[2], y.shape[3])
        outs.append(y)
    return outs


def test_pconv_module_matches_numpy():
    module = PConvModule(C)
    p = randomise(module)
    maps = pyramid()
    got = module(maps)
    want = [np.maximum(y, 0) for y in pconv_ref([m.numpy() for m in maps], p)]
    for g, w in zip(got, want, strict=True):
        assert tuple(g.shape) == w.shape
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("integrated", [True, False])
def test_norm_statistics_integrated_or_per_level(integrated):
    module = PConvModule(C, norm_type="bn", integrated_norm=integrated)
    p = randomise(module, seed=1)
    module.train()
    maps = pyramid(seed=2)
    got = [g.numpy() for g in module(maps)]
    pre = pconv_ref([m.numpy() for m in maps], p)
    if integrated:  # one mean/var per channel over batch and every position of every level
        flat = np.concatenate([y.transpose(1, 0, 2, 3).reshape(C, -1) for y in pre], axis=1)
        stats = [(flat.mean(axis=1), flat.var(axis=1))] * len(pre)
    else:
        stats = [(y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3))) for y in pre]
    for g, y, (mean, var) in zip(got, pre, stats, strict=True):
        want = (y - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + 1e-5)
        np.testing.assert_allclose(g, np.maximum(want, 0), rtol=1e-3, atol=1e-3)


def test_integrated_group_norm_uses_all_levels():
    module = PConvModule(4, norm_type="gn", num_groups=2)
    maps = [paddle.ones([1, 4, 3, 3]), paddle.ones([1, 4, 2, 2]) * 3]
    for name in ("conv_same", "conv_down", "conv_up"):
        set_value(getattr(module, name).weight, np.zeros((4, 4, 3, 3)))
    set_value(module.conv_same.weight, np.eye(4)[:, :, None, None] * np.pad([[1.0]], 1))
    y = [o.numpy() for o in module(maps)]
    # level values 1 (9 px) and 3 (4 px): joint mean 21/13; level 0 is below it -> ReLU -> 0
    assert (y[0] == 0).all() and (y[1] > 0).all()


def test_names_and_stacks():
    neck = PConvFPN([4, 6, 8], C, num_stacks=2, norm_type="gn", norm_groups=3)
    tail = sorted(k for k in neck.state_dict() if k.startswith("pconvs."))
    assert tail == sorted(
        f"pconvs.{k}.{p}"
        for k in range(2)
        for p in (
            "conv_same.weight",
            "conv_down.weight",
            "conv_up.weight",
            "norm.weight",
            "norm.bias",
        )
    )
    assert "pconvs.0.conv_same.bias" in PConvFPN([4, 6, 8], C, num_stacks=1).state_dict()
    feats = odd_feats([4, 6, 8], size=SIZE)
    maps = neck.fpn(feats)
    for module in neck.pconvs:
        maps = module(maps)
    for got, want in zip(neck(feats), maps, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="num_stacks"):
        PConvFPN([4, 6, 8], C, num_stacks=0)


def test_evonorm_is_the_activation():
    module = PConvModule(4, norm_type="evonorm_s0", num_groups=2)
    assert module.act is None
    out = module(odd_feats([4] * 3, strides=(8, 16, 32), size=SIZE))
    assert any((o.numpy() < 0).any() for o in out)  # no ReLU after the norm
