"""TwoWayFPN, PConvFPN and BiFPN: registration, config build, the documented output shapes for
odd image sizes (fed by a real backbone), every norm type, gradients and export."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from ppdet.config.builder import create
from ppdet.config.registry import lookup
from ppdet.modeling.backbones import ResNet
from ppdet.modeling.layers.norms import NORM_TYPES
from ppdet.modeling.necks import BiFPN, PConvFPN, TwoWayFPN
from tests.modeling.pyramid_refs import odd_feats

NECKS = {"TwoWayFPN": TwoWayFPN, "PConvFPN": PConvFPN, "BiFPN": BiFPN}
R18_C3_C5 = [128, 256, 512]


def small(name, in_channels, out_channel=16, **kw):
    extra = {"num_stacks": 2} if name in ("PConvFPN", "BiFPN") else {}
    return NECKS[name](in_channels, out_channel, **extra, **kw)


def expected_shapes(batch, channels, size, strides):
    return [(batch, channels, math.ceil(size[0] / s), math.ceil(size[1] / s)) for s in strides]


@pytest.mark.parametrize("name", list(NECKS))
def test_registered_and_built_from_config(name):
    assert lookup(name, "neck") is NECKS[name]
    neck = create(name, {"out_channel": 24, "norm_type": "gn"}, in_channels=[8, 16, 32])
    assert neck.out_channels == [24] * 5
    assert neck.out_strides == [8, 16, 32, 64, 128]
    assert neck.spatial_scales == [1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128]


@pytest.mark.parametrize("size", [(97, 131), (64, 64), (33, 200)])
@pytest.mark.parametrize("name", list(NECKS))
def test_odd_image_sizes_give_documented_shapes(name, size):
    """A ResNet-18 on an H x W image: level with stride s is ceil(H/s) x ceil(W/s)."""
    paddle.seed(0)
    backbone = ResNet(depth=18, return_idx=[1, 2, 3], freeze_at=-1)
    neck = small(name, R18_C3_C5)
    neck.eval()
    with paddle.no_grad():
        outs = neck(backbone(paddle.rand([1, 3, *size])))
    assert [tuple(o.shape) for o in outs] == expected_shapes(1, 16, size, neck.out_strides)
    if size == (97, 131):  # the numbers written in the docstrings
        assert [tuple(o.shape[2:]) for o in outs] == [(13, 17), (7, 9), (4, 5), (2, 3), (1, 2)]


@pytest.mark.parametrize("norm_type", [None, *NORM_TYPES])
@pytest.mark.parametrize("name", list(NECKS))
def test_every_norm_type_trains(name, norm_type):
    paddle.seed(1)
    neck = small(name, [8, 12, 20], norm_type=norm_type)
    feats = odd_feats([8, 12, 20], size=(41, 67))
    neck.train()
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == expected_shapes(2, 16, (41, 67), neck.out_strides)
    loss = sum((o * o).mean() for o in outs)
    loss.backward()
    trainable = [p for p in neck.parameters() if not p.stop_gradient]
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in trainable)
    neck.eval()
    assert all(np.isfinite(o.numpy()).all() for o in neck(feats))


@pytest.mark.parametrize("channels", [64, 88, 256])
@pytest.mark.parametrize("name", list(NECKS))
def test_group_norm_widths(name, channels):
    """GN with the default 32 groups works for 64, 88 (-> 22 groups) and 256 channels."""
    neck = NECKS[name]([8, 16, 32], channels, norm_type="gn")
    groups = {
        layer._num_groups for layer in neck.sublayers() if isinstance(layer, paddle.nn.GroupNorm)
    }
    assert groups == {{64: 32, 88: 22, 256: 32}[channels]}


@pytest.mark.parametrize("name", list(NECKS))
def test_export_with_dynamic_sizes(name):
    neck = small(name, [8, 16, 32], norm_type="gn")
    neck.eval()
    spec = [[paddle.static.InputSpec([None, c, None, None], "float32") for c in (8, 16, 32)]]
    static = paddle.jit.to_static(neck, input_spec=spec, full_graph=True)
    for size in ((97, 131), (64, 64)):
        feats = odd_feats([8, 16, 32], size=size, batch=1)
        want = [o.numpy() for o in neck(feats)]
        got = static(feats)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(NECKS))
def test_wrong_number_of_maps_is_clear(name):
    neck = small(name, [8, 16, 32])
    with pytest.raises(ValueError, match="expects 3 maps"):
        neck(odd_feats([8, 16]))


def test_fpn_group_norm_fits_88_channels():
    from ppdet.modeling.necks import FPN

    neck = FPN([8, 16, 32], 88, [0.125, 0.0625, 0.03125], norm_type="gn")
    groups = {
        layer._num_groups for layer in neck.sublayers() if isinstance(layer, paddle.nn.GroupNorm)
    }
    assert groups == {22}
    assert (
        FPN([8], 256, [0.03125], norm_type="gn", norm_groups=16).fpn_res5_sum.norm._num_groups == 16
    )
