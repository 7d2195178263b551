"""ResNet / ResNet-vd / ResNeXt / SENet backbones: PaddleDetection 2.x names and numbers."""

from __future__ import annotations

import os
import zlib

import numpy as np
import paddle
import pytest

from ppdet.config.builder import create
from ppdet.config.registry import lookup
from ppdet.modeling.backbones.resnet import ResNet, ResStage
from ppdet.modeling.backbones.senet import SENet

COMPAT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "compat")

# fixture list -> (class, settings of the upstream config that produced it)
LISTS = {
    "backbone_resnet18": (ResNet, dict(depth=18, variant="b")),
    "backbone_resnet18_vd": (ResNet, dict(depth=18, variant="d")),
    "backbone_resnet34": (ResNet, dict(depth=34, variant="b")),
    "backbone_resnet34_vd": (ResNet, dict(depth=34, variant="d")),
    "backbone_resnet50": (ResNet, dict(depth=50, variant="b")),
    "backbone_resnet50_vd": (ResNet, dict(depth=50, variant="d")),
    "backbone_resnet101": (ResNet, dict(depth=101, variant="b")),
    "backbone_resnet101_vd": (ResNet, dict(depth=101, variant="d")),
    "backbone_resnet152": (ResNet, dict(depth=152, variant="b")),
    "backbone_resnet152_vd": (ResNet, dict(depth=152, variant="d")),
    "backbone_resnext101_vd_64x4d": (ResNet, dict(depth=101, variant="d", groups=64, base_width=4)),
    "backbone_senet154_vd": (SENet, dict(depth=152, variant="d", groups=64, base_width=4)),
}


def _read_list(name: str) -> list[str]:
    with open(os.path.join(COMPAT, name + ".txt")) as f:
        return [line for line in f.read().splitlines() if line]


def _entries(layer: paddle.nn.Layer, prefix: str = "backbone.") -> list[str]:
    """state_dict as the fixture lines: name, shape, dtype (sorted)."""
    return sorted(f"{prefix}{k}\t{list(v.shape)}\tfloat32" for k, v in layer.state_dict().items())


@pytest.mark.parametrize("name", sorted(LISTS))
def test_state_dict_equals_paddledetection_list(name):
    cls, kwargs = LISTS[name]
    with paddle.LazyGuard():  # names and shapes only: skip the (large) initialisation
        model = cls(freeze_at=0, return_idx=[0, 1, 2, 3], num_stages=4, **kwargs)
    assert _entries(model) == _read_list(name)
    for v in model.state_dict().values():
        assert v.dtype == paddle.float32


def test_variant_names():
    with paddle.LazyGuard():
        vd = ResNet(depth=50, variant="vd", num_stages=2, return_idx=[0, 1])
        d = ResNet(depth=50, variant="d", num_stages=2, return_idx=[0, 1])
        x_b = ResNet(depth=50, variant="b", groups=32, base_width=4, num_stages=1, return_idx=[0])
        c = ResNet(depth=50, variant="c", num_stages=2, return_idx=[0, 1])
    assert _entries(vd) == _entries(d)
    # ResNeXt with the 7x7 stem: conv1.res_conv1; 32x4d res2 width 128 in 32 groups
    sd = x_b.state_dict()
    assert list(sd["conv1.res_conv1.conv.weight"].shape) == [64, 3, 7, 7]
    assert list(sd["res2.res2a.branch2b.conv.weight"].shape) == [128, 4, 3, 3]
    # c: deep stem, plain strided shortcut (no pool)
    names = c.state_dict()
    assert "conv1.conv1_3.conv.weight" in names and "res3.res3a.short.conv.weight" in names


def _check_outputs(backbone, size=64, batch=2):
    backbone.eval()
    with paddle.no_grad():
        feats = backbone(paddle.randn([batch, 3, size, size]))
    assert len(feats) == len(backbone.out_channels) == len(backbone.out_strides)
    for feat, channels, stride in zip(
        feats, backbone.out_channels, backbone.out_strides, strict=True
    ):
        assert tuple(feat.shape) == (batch, channels, size // stride, size // stride)


@pytest.mark.parametrize(
    "cls,kwargs,channels,strides",
    [
        (ResNet, dict(depth=18, variant="b"), [64, 128, 256, 512], [4, 8, 16, 32]),
        (ResNet, dict(depth=50, variant="vd"), [256, 512, 1024, 2048], [4, 8, 16, 32]),
        (ResNet, dict(depth=50, groups=4, base_width=8, return_idx=[1, 3]), [512, 2048], [8, 32]),
        (
            ResNet,
            dict(depth=34, variant="d", num_stages=3, return_idx=[0, 1, 2]),
            [64, 128, 256],
            [4, 8, 16],
        ),
        (ResNet, dict(depth=50, variant="a", num_stages=3, return_idx=[2]), [1024], [16]),
        (SENet, dict(depth=18, groups=1, base_width=64), [64, 128, 256, 512], [4, 8, 16, 32]),
    ],
)
def test_output_shapes_and_strides(cls, kwargs, channels, strides):
    backbone = cls(**kwargs)
    assert backbone.out_channels == channels
    assert backbone.out_strides == strides
    _check_outputs(backbone)


def test_num_stages_3_has_no_res5():
    with paddle.LazyGuard():
        c4 = ResNet(depth=50, num_stages=3, return_idx=[2])
    names = list(c4.state_dict())
    assert not any(n.startswith("res5") for n in names)
    assert any(n.startswith("res4.res4f.") for n in names)


def test_res5_stage_builds_the_c4_head_layout():
    # names/shapes: res5 of a depth-50 variant-b ResNet, as the C4 Res5Head holds it
    with paddle.LazyGuard():
        res5 = ResStage("res5", 1024, 3, bottleneck=True, stride=2, variant="b")
    expected = [
        line.replace("backbone.res5.", "", 1)
        for line in _read_list("backbone_resnet50")
        if line.startswith("backbone.res5.")
    ]
    assert _entries(res5, prefix="") == expected
    assert res5.out_channels == 2048
    small = ResStage("res5", 32, 2, bottleneck=True, stride=2, ch_out=8)
    small.eval()
    assert tuple(small(paddle.randn([1, 32, 8, 8])).shape) == (1, 32, 4, 4)


# --- numbers equal PaddleDetection 2.6.0 --------------------------------------------------


def _fill(name: str, shape: list[int]) -> np.ndarray:
    """Deterministic values for one state-dict entry (the same in any numpy version)."""
    r = np.random.RandomState(zlib.crc32(name.encode()))
    u = r.rand(*shape).astype("float32") * 2 - 1  # uniform [-1, 1), variance 1/3
    if name.endswith("_variance"):
        return 1.0 + 0.5 * np.abs(u)
    if name.endswith(("_mean", "bias")):
        return 0.1 * u
    if name.endswith("norm.weight"):
        return 1.0 + 0.1 * u
    fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
    return u * np.float32(np.sqrt(3.0 / fan_in))


# Recorded by running paddledet 2.6.0's own ResNet/SENet (eval mode) with the weights of
# ``_fill`` on the image below: per output, mean |x| and the spatial sums of channels 0..2 of
# the second image.
REFERENCE = {
    "r18b": (
        ResNet,
        dict(depth=18, variant="b", num_stages=3, return_idx=[0, 1, 2]),
        [
            (0.434624, [2.23777, 192.04941, 212.91502]),
            (0.453789, [6.6852, 26.43365, 0.0]),
            (0.320231, [4.5339, 11.81109, 0.4912]),
        ],
    ),
    "r34vd": (
        ResNet,
        dict(depth=34, variant="d", num_stages=2, return_idx=[0, 1]),
        [(0.226186, [1.65312, 142.14597, 148.82973]), (0.295028, [0.57959, 24.30014, 9.47852])],
    ),
    "r50a": (
        ResNet,
        dict(depth=50, variant="a", num_stages=2, return_idx=[0, 1]),
        [(0.47332, [117.48418, 15.50564, 297.78915]), (0.375051, [2.96112, 3.24992, 4.72093])],
    ),
    "r50vd": (
        ResNet,
        dict(depth=50, variant="d", num_stages=3, return_idx=[0, 1, 2], freeze_norm=False),
        [
            (0.224965, [107.34975, 3.55666, 93.90654]),
            (0.195657, [10.92963, 2.14263, 4.34922]),
            (0.241429, [11.97318, 6.29761, 2.98677]),
        ],
    ),
    "x50vd_32x4d": (
        ResNet,
        dict(depth=50, variant="d", groups=32, base_width=4, num_stages=2, return_idx=[0, 1]),
        [(0.21174, [49.01592, 12.53567, 15.51607]), (0.202872, [16.01004, 0.0, 11.96029])],
    ),
    "se50vd_32x4d": (
        SENet,
        dict(depth=50, variant="d", groups=32, base_width=4, num_stages=2, return_idx=[1]),
        [(0.129108, [8.78043, 0.0, 12.42219])],
    ),
}


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_outputs_equal_paddledetection(key):
    cls, kwargs, expected = REFERENCE[key]
    model = cls(**kwargs)
    model.set_state_dict(
        {k: paddle.to_tensor(_fill(k, list(v.shape))) for k, v in model.state_dict().items()}
    )
    model.eval()
    image = np.random.RandomState(0).rand(2, 3, 64, 64).astype("float32") * 2 - 1
    with paddle.no_grad():
        outs = [o.numpy() for o in model(paddle.to_tensor(image))]
    assert len(outs) == len(expected)
    for out, (mean_abs, sums) in zip(outs, expected, strict=True):
        np.testing.assert_allclose(np.abs(out).mean(), mean_abs, rtol=1e-4)
        np.testing.assert_allclose(out.sum(axis=(2, 3))[1, :3], sums, rtol=1e-4, atol=1e-3)


# --- training behaviour ----------------------------------------------------------------------


def _backward(model, size=32):
    model.train()
    feats = model(paddle.randn([2, 3, size, size]))
    sum(f.mean() for f in feats).backward()


def test_freeze_at_stops_gradients():
    model = ResNet(depth=18, freeze_at=1, freeze_norm=False)
    _backward(model)
    for name, p in model.named_parameters():
        frozen = name.startswith(("conv1.", "res2.", "res3."))
        assert p.stop_gradient == (frozen or name.endswith(("_mean", "_variance"))), name
        if name.endswith(("_mean", "_variance")):
            continue
        assert (p.grad is None) == frozen, name


def test_freeze_at_minus_one_trains_everything():
    model = ResNet(depth=18, freeze_at=-1, freeze_norm=False, num_stages=2, return_idx=[0, 1])
    _backward(model)
    assert model.conv1.conv1.conv.weight.grad is not None
    assert model.res2.res2a.branch2a.norm.weight.grad is not None


def test_freeze_norm_fixes_norm_affine_parameters():
    model = ResNet(depth=18, freeze_at=-1, freeze_norm=True, num_stages=2, return_idx=[0, 1])
    _backward(model)
    block = model.res3.res3a
    assert block.branch2a.conv.weight.grad is not None
    assert block.branch2a.norm.weight.grad is None and block.branch2a.norm.bias.grad is None


def test_lr_mult_list_scales_stage_learning_rates():
    with paddle.LazyGuard():
        model = ResNet(depth=18, lr_mult_list=[0.1, 0.2, 0.3, 0.4], freeze_at=-1, freeze_norm=False)
    lr = {n: p.optimize_attr["learning_rate"] for n, p in model.named_parameters()}
    assert lr["conv1.conv1.conv.weight"] == 1.0
    assert lr["res2.res2a.branch2a.conv.weight"] == pytest.approx(0.1)
    assert lr["res3.res3a.short.norm.weight"] == pytest.approx(0.2)
    assert lr["res5.res5b.branch2b.conv.weight"] == pytest.approx(0.4)
    assert lr["res5.res5b.branch2b.norm._mean"] == 1.0  # statistics are not optimised


def test_state_dict_round_trip(tmp_path):
    paddle.seed(1)
    source = SENet(depth=18, groups=1, base_width=64, num_stages=2, return_idx=[0, 1])
    path = str(tmp_path / "senet.pdparams")
    paddle.save(source.state_dict(), path)
    paddle.seed(2)
    target = SENet(depth=18, groups=1, base_width=64, num_stages=2, return_idx=[0, 1])
    x = paddle.randn([1, 3, 32, 32])
    source.eval(), target.eval()
    with paddle.no_grad():
        before = target(x)[1].numpy()
        target.set_state_dict(paddle.load(path))
        after, expected = target(x)[1].numpy(), source(x)[1].numpy()
    assert not np.allclose(before, expected)
    np.testing.assert_array_equal(after, expected)


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(depth=20), "depth 20"),
        (dict(variant="e"), "variant 'e'"),
        (dict(num_stages=3, return_idx=[3]), "return_idx [3]"),
        (dict(return_idx=[]), "return_idx []"),
        (dict(depth=18, groups=32, base_width=4), "groups=1"),
        (dict(num_stages=5), "num_stages 5"),
    ],
)
def test_bad_settings_raise_one_line_errors(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        ResNet(**kwargs)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_registered_and_built_from_config():
    assert lookup("ResNet", "backbone") is ResNet and lookup("SENet", "backbone") is SENet
    with paddle.LazyGuard():
        model = create(
            "ResNet",
            {"depth": 50, "variant": "d", "lr_mult_list": [1, 1, 1, 1], "return_idx": [1, 2, 3]},
            role="backbone",
        )
    assert model.out_channels == [512, 1024, 2048] and model.out_strides == [8, 16, 32]
