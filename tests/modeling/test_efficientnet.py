"""EfficientNet backbone: the v0.5 / PaddleClas parameter layout (names and shapes), the
published B0 parameter count, output shapes for odd sizes, TensorFlow 'SAME' padding, one
MBConv block against NumPy, drop-connect, scales and norm types."""

from __future__ import annotations

import os
import re

import numpy as np
import paddle
import pytest

from ppdet.config.builder import create
from ppdet.config.registry import lookup
from ppdet.modeling.backbones import EfficientNet
from ppdet.modeling.backbones.efficientnet import MBConvBlock, drop_connect
from ppdet.modeling.layers.norms import NORM_TYPES
from tests.modeling.pyramid_refs import conv_ref, set_value

# fluid variable suffix -> 2.x structured suffix (v0.5's EfficientNet / PaddleClas naming)
FLUID_SUFFIX = {
    "_weights": ".weight",
    "_scale": ".weight",
    "_offset": ".bias",
    "_mean": "._mean",
    "_variance": "._variance",
}
# the variables v0.5's own EfficientNet('b0') saves on fluid 1.8 (tests/fixtures/legacy_v05)
V05_LIST = os.path.join(
    os.path.dirname(__file__), "..", "fixtures", "legacy_v05", "EfficientNetB0_pretrained.txt"
)
CLASSIFIER_HEAD = ("_conv_head_", "_bn1_", "_fc_")  # PaddleClas's head, not a backbone part


def from_fluid(name: str) -> str:
    for fluid, ours in FLUID_SUFFIX.items():
        if name.endswith(fluid):
            return name[: -len(fluid)] + ours
    raise AssertionError(name)


def v05_backbone_shapes() -> dict[str, list[int]]:
    out = {}
    with open(V05_LIST) as f:
        for line in f:
            name, shape = line.split("\t")[:2]
            if not name.startswith(CLASSIFIER_HEAD):
                out[name] = [int(v) for v in shape.strip("[]").split(",")]
    return out


# (kernel, expand) of the 16 B0 blocks in order, from the seven stage strings
B0_BLOCKS = [(3, 1)] + [(3, 6)] * 2 + [(5, 6)] * 2 + [(3, 6)] * 3 + [(5, 6)] * 3
B0_BLOCKS += [(5, 6)] * 4 + [(3, 6)]


def test_layout_follows_v05_names():
    model = EfficientNet("b0")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert {from_fluid(n): s for n, s in v05_backbone_shapes().items()} == shapes
    # 5 stem + 14 for block 0 + 19 for each of the 15 expanding blocks, nothing else
    assert len(shapes) == 5 + 14 + 15 * 19 == 304
    for n, (k, expand) in enumerate(B0_BLOCKS):
        dw = shapes[f"_blocks.{n}._depthwise_conv.weight"]
        assert dw[1:] == [1, k, k]
        assert (f"_blocks.{n}._expand_conv.weight" in shapes) == (expand != 1)
    assert all(re.fullmatch(r"(_conv_stem|_bn0|_blocks\.\d+\.\w+)\.\w+", k) for k in shapes)


def test_b0_with_imagenet_head_has_the_published_parameter_count():
    model = EfficientNet("b0")
    learnable = sum(
        int(np.prod(p.shape))
        for name, p in model.named_parameters()
        if not name.endswith(("_mean", "_variance"))
    )
    head = 320 * 1280 + 2 * 1280 + 1280 * 1000 + 1000  # 1x1 conv, BN, FC of the classifier
    assert learnable + head == 5_288_548  # EfficientNet-B0 (Tan & Le 2019: 5.3M)


@pytest.mark.parametrize(
    "size,expected",
    [
        ((97, 131), [(40, 13, 17), (112, 7, 9), (320, 4, 5)]),
        ((64, 64), [(40, 8, 8), (112, 4, 4), (320, 2, 2)]),
    ],
)
def test_output_shapes_strides_channels(size, expected):
    model = EfficientNet("b0")
    model.eval()
    assert model.out_channels == [40, 112, 320] and model.out_strides == [8, 16, 32]
    with paddle.no_grad():
        outs = model(paddle.rand([2, 3, *size]))
    assert [tuple(o.shape) for o in outs] == [(2, *e) for e in expected]


def test_return_idx_and_scales():
    model = EfficientNet("b0", return_idx=[1, 3, 5])
    assert model.out_channels == [24, 80, 192] and model.out_strides == [4, 16, 32]
    b1 = EfficientNet("b1")
    assert len(b1._blocks) == 23 and b1.out_channels == [40, 112, 320]
    b3 = EfficientNet("b3")
    assert b3.out_channels == [48, 136, 384] and b3._conv_stem.weight.shape == [40, 3, 3, 3]
    assert len(EfficientNet("b0", use_se=False).state_dict()) == 304 - 4 * 16


def test_stride_two_pads_like_tensorflow_same():
    """A stride-2 3x3 conv on an even map pads 0 before and 1 after (TF 'SAME')."""
    model = EfficientNet("b0")
    conv = model._conv_stem
    rng = np.random.default_rng(0)
    w = rng.normal(size=(32, 3, 3, 3)).astype("float32")
    set_value(conv.weight, w)
    x = rng.normal(size=(1, 3, 8, 10)).astype("float32")
    xp = np.pad(x, [(0, 0), (0, 0), (0, 1), (0, 1)])
    want = np.zeros((1, 32, 4, 5))
    for i in range(3):
        for j in range(3):
            want += np.einsum(
                "bchw,oc->bohw", xp[:, :, i : i + 8 : 2, j : j + 10 : 2], w[:, :, i, j]
            )
    np.testing.assert_allclose(conv(paddle.to_tensor(x)).numpy(), want, rtol=1e-4, atol=1e-4)


def test_mbconv_block_matches_numpy_in_eval():
    block = MBConvBlock(4, 4, 3, 1, 2, 0.25, 0.0, {"norm_type": "bn"})
    rng = np.random.default_rng(1)
    values = {}
    for name, p in block.state_dict().items():
        v = (
            rng.uniform(0.5, 1.5, size=p.shape)
            if name.endswith("_variance")
            else rng.normal(scale=0.5, size=p.shape)
        )
        set_value(p, v)
        values[name] = v
    block.eval()
    x = rng.normal(size=(2, 4, 5, 6)).astype("float32")

    def bn_ref(y, prefix):
        g = {
            s: values[f"{prefix}.{s}"].reshape(1, -1, 1, 1)
            for s in ("weight", "bias", "_mean", "_variance")
        }
        return (y - g["_mean"]) / np.sqrt(g["_variance"] + 1e-3) * g["weight"] + g["bias"]

    def swish(y):
        return y / (1 + np.exp(-y))

    y = swish(bn_ref(conv_ref(x, values["_expand_conv.weight"]), "_bn0"))
    y = swish(bn_ref(conv_ref(y, values["_depthwise_conv.weight"], groups=8), "_bn1"))
    s = y.mean(axis=(2, 3), keepdims=True)
    s = swish(conv_ref(s, values["_se_reduce.weight"], values["_se_reduce.bias"]))
    s = conv_ref(s, values["_se_expand.weight"], values["_se_expand.bias"])
    y = y / (1 + np.exp(-s))
    y = bn_ref(conv_ref(y, values["_project_conv.weight"]), "_bn2") + x
    np.testing.assert_allclose(block(paddle.to_tensor(x)).numpy(), y, rtol=1e-4, atol=1e-4)


def test_drop_connect_per_sample():
    x = paddle.ones([64, 3, 2, 2])
    assert drop_connect(x, 0.2, training=False) is x
    assert drop_connect(x, 0.0, training=True) is x
    paddle.seed(0)
    y = drop_connect(x, 0.25, training=True).numpy()
    per_sample = y.reshape(64, -1)
    assert all(np.allclose(r, 0) or np.allclose(r, 1 / 0.75) for r in per_sample)
    dropped = sum(np.allclose(r, 0) for r in per_sample)
    assert 4 <= dropped <= 30  # about 16 of 64


def test_drop_connect_rate_grows_with_depth_and_only_in_training():
    model = EfficientNet("b0", drop_connect_rate=0.2)
    rates = [b.drop_rate for b in model._blocks]
    np.testing.assert_allclose(rates, [0.2 * i / 16 for i in range(16)])
    model.eval()
    x = paddle.rand([1, 3, 64, 64])
    a, b = model(x)[-1].numpy(), model(x)[-1].numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_norm_types_train(norm_type):
    paddle.seed(0)
    model = EfficientNet("b0", norm_type=norm_type, return_idx=[1, 2])
    model.train()
    outs = model(paddle.rand([2, 3, 33, 47]))
    assert [tuple(o.shape) for o in outs] == [(2, 24, 9, 12), (2, 40, 5, 6)]
    sum(o.mean() for o in outs).backward()
    assert np.isfinite(model._conv_stem.weight.grad.numpy()).all()


def test_frozen_norm_and_config_build():
    assert lookup("EfficientNet", "backbone") is EfficientNet
    model = create("EfficientNet", {"scale": "b0", "freeze_norm": True}, role="backbone")
    assert model._bn0.weight.stop_gradient and model._blocks[3]._bn2.bias.stop_gradient
    for bad in (
        {"scale": "b8"},
        {"return_idx": [4, 2]},
        {"return_idx": [7]},
        {"drop_connect_rate": 1.0},
    ):
        with pytest.raises(ValueError, match="EfficientNet"):
            EfficientNet(**bad)


def test_export_matches_eager():
    model = EfficientNet("b0")
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32")]
    static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
    x = paddle.rand([1, 3, 97, 131])
    for got, want in zip(static(x), model(x), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
