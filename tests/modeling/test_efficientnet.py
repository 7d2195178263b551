"""EfficientNet backbone: the v0.5 / PaddleClas parameter layout (names and shapes), the
published B0 parameter count, output shapes for odd sizes, TensorFlow 'SAME' padding, one
MBConv block against NumPy, drop-connect, scales and norm types."""

from __future__ import annotations

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


def from_fluid(name: str) -> str:
    for fluid, ours in FLUID_SUFFIX.items():
        if name.endswith(fluid):
            return name[: -len(fluid)] + ours
    raise AssertionError(name)


def bn(prefix, c):
    return {f"{prefix}_{s}": [c] for s in ("scale", "offset", "mean", "variance")}


# v0.5's names and shapes, written out from its EfficientNet program for the stem and three
# blocks: 0 (expand 1, 32 -> 16), 1 (expand 6, 16 -> 24, stride 2) and 15 (192 -> 320)
V05_SAMPLE = {
    "_conv_stem_weights": [32, 3, 3, 3],
    **bn("_bn0", 32),
    "_blocks.0._depthwise_conv_weights": [32, 1, 3, 3],
    **bn("_blocks.0._bn1", 32),
    "_blocks.0._se_reduce_weights": [8, 32, 1, 1],
    "_blocks.0._se_reduce_offset": [8],
    "_blocks.0._se_expand_weights": [32, 8, 1, 1],
    "_blocks.0._se_expand_offset": [32],
    "_blocks.0._project_conv_weights": [16, 32, 1, 1],
    **bn("_blocks.0._bn2", 16),
    "_blocks.1._expand_conv_weights": [96, 16, 1, 1],
    **bn("_blocks.1._bn0", 96),
    "_blocks.1._depthwise_conv_weights": [96, 1, 3, 3],
    **bn("_blocks.1._bn1", 96),
    "_blocks.1._se_reduce_weights": [4, 96, 1, 1],
    "_blocks.1._se_reduce_offset": [4],
    "_blocks.1._se_expand_weights": [96, 4, 1, 1],
    "_blocks.1._se_expand_offset": [96],
    "_blocks.1._project_conv_weights": [24, 96, 1, 1],
    **bn("_blocks.1._bn2", 24),
    "_blocks.15._expand_conv_weights": [1152, 192, 1, 1],
    "_blocks.15._depthwise_conv_weights": [1152, 1, 3, 3],
    "_blocks.15._se_reduce_weights": [48, 1152, 1, 1],
    "_blocks.15._project_conv_weights": [320, 1152, 1, 1],
    **bn("_blocks.15._bn2", 320),
}
# (kernel, expand) of the 16 B0 blocks in order, from the seven stage strings
B0_BLOCKS = [(3, 1)] + [(3, 6)] * 2 + [(5, 6)] * 2 + [(3, 6)] * 3 + [(5, 6)] * 3
B0_BLOCKS += [(5, 6)] * 4 + [(3, 6)]


def test_layout_follows_v05_names():
    model = EfficientNet("b0")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    for fluid, shape in V05_SAMPLE.items():
        assert shapes[from_fluid(fluid)] == shape, fluid
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


def test_v05_named_tarball_is_refused_as_pretrain_weights(tmp_path):
    """What is true today about PaddleDetection 0.5's ImageNet tarball: a v0.1-format tar with
    exactly v0.5's EfficientNet variable names (built here from our state with the suffix rule,
    the real file is not available offline) is refused with a clear error, because
    ppdet.zoo.legacy has no EfficientNet rule (efficientdet_d0_coco.yml says so)."""
    from ppdet.checkpoint.report import WeightsError
    from ppdet.zoo.legacy import write_legacy_tar
    from ppdet.zoo.weights import load_weights

    model = EfficientNet("b0")
    tensors = {}
    for name, value in model.state_dict().items():
        base, suffix = name.rsplit(".", 1)
        if suffix in ("_mean", "_variance"):
            fluid = f"{base}{suffix}"
        elif suffix == "weight":
            fluid = base + ("_scale" if base.split(".")[-1].startswith("_bn") else "_weights")
        else:
            fluid = f"{base}_offset"
        tensors[fluid] = value.numpy()
    assert set(V05_SAMPLE) <= set(tensors)  # the v0.5 names written out above
    path = str(tmp_path / "EfficientNetB0_pretrained.tar")
    write_legacy_tar(tensors, path)
    with pytest.raises(WeightsError, match="no known v0.1 backbone variables"):
        load_weights(model, path, strict=False, quiet=True)
