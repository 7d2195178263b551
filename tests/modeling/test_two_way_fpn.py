"""TwoWayFPN: parameter names, the bottom-up pathway against a NumPy reference, and that it
starts from the plain FPN's outputs."""

from __future__ import annotations

import numpy as np
import paddle

from ppdet.modeling.necks import FPN, TwoWayFPN
from tests.modeling.pyramid_refs import conv_ref, odd_feats, set_value

IN = [4, 6, 8]


def test_names_wrap_the_fpn():
    neck = TwoWayFPN(IN, 8, norm_type="gn", norm_groups=4)
    fpn = FPN(IN, 8, [0.125, 0.0625, 0.03125], has_extra_convs=True, extra_stage=2, use_c5=False)
    names = neck.state_dict().keys()
    assert {k[len("fpn.") :] for k in names if k.startswith("fpn.")} == set(fpn.state_dict())
    bottom_up = sorted(k for k in names if not k.startswith("fpn."))
    assert bottom_up == sorted(
        f"{kind}.{i}.{p}"
        for kind in ("downsample_convs", "fuse_convs")
        for i in range(4)
        for p in ("conv.weight", "norm.weight", "norm.bias")
    )
    plain = TwoWayFPN(IN, 8)
    assert "fuse_convs.0.conv.bias" in plain.state_dict()  # no norm: convs with bias


def test_bottom_up_pathway_matches_numpy():
    paddle.seed(3)
    neck = TwoWayFPN(IN, 3)
    rng = np.random.default_rng(0)
    weights = {}
    for kind in ("downsample_convs", "fuse_convs"):
        for i, layer in enumerate(getattr(neck, kind)):
            w = rng.normal(scale=0.5, size=(3, 3, 3, 3))
            b = rng.normal(scale=0.1, size=3)
            set_value(layer.conv.weight, w)
            set_value(layer.conv.bias, b)
            weights[kind, i] = (w, b)
    feats = odd_feats(IN, size=(97, 131), seed=1)
    pyramid = [p.numpy() for p in neck.fpn(feats)]
    outs = [o.numpy() for o in neck(feats)]

    def relu(x):
        return np.maximum(x, 0)

    expected = [pyramid[0]]
    for level in range(1, 5):
        down = relu(conv_ref(expected[-1], *weights["downsample_convs", level - 1], stride=2))
        expected.append(relu(conv_ref(down + pyramid[level], *weights["fuse_convs", level - 1])))
    for got, want in zip(outs, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(outs[0], pyramid[0])  # N_0 = P_0


def test_identity_bottom_up_hand_case():
    """Centre-tap identity kernels: N_l = relu(relu(N_{l-1}[::2, ::2]) + P_l)."""
    neck = TwoWayFPN(IN, 2)
    eye = np.zeros((2, 2, 3, 3))
    eye[[0, 1], [0, 1], 1, 1] = 1.0
    for layer in [*neck.downsample_convs, *neck.fuse_convs]:
        set_value(layer.conv.weight, eye)
        set_value(layer.conv.bias, np.zeros(2))
    feats = odd_feats(IN, size=(40, 72), seed=2)
    pyramid = [p.numpy() for p in neck.fpn(feats)]
    outs = [o.numpy() for o in neck(feats)]
    n = pyramid[0]
    for level in range(1, 5):
        n = np.maximum(np.maximum(n[:, :, ::2, ::2], 0) + pyramid[level], 0)
        np.testing.assert_allclose(outs[level], n, rtol=1e-5, atol=1e-6)
