"""MobileNetV3, MobileNetV1 with SSD extra blocks, and SSD's VGG: output shapes, numerics of the
small units, and parameter names/shapes equal to PaddleDetection 2.6 (tests/fixtures/compat)."""

import math
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppdet.modeling.backbones.mobilenet_v1 import MobileNet
from ppdet.modeling.backbones.mobilenet_v3 import ConvBN, MobileNetV3, SEModule, make_divisible
from ppdet.modeling.backbones.vgg import VGG

COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "compat"
SSDLITE = dict(
    model_name="large",
    feature_maps=[14, 17, 18, 19, 20, 21],
    with_extra_blocks=True,
    multiplier=0.5,
)
SSD_V1 = dict(feature_maps=[11, 13, 14, 15, 16, 17], with_extra_blocks=True)


def read_backbone_list(name):
    """{param name: shape} of the ``backbone.`` entries of a compat list, prefix removed."""
    entries = {}
    for line in (COMPAT / f"{name}.txt").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        assert dtype == "float32"
        if key.startswith("backbone."):
            shape = tuple(int(v) for v in shape.strip("[]").split(",") if v.strip())
            entries[key[len("backbone.") :]] = shape
    return entries


def assert_matches_list(layer, name):
    theirs = read_backbone_list(name)
    ours = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert all(str(v.dtype) == "paddle.float32" for v in layer.state_dict().values())
    missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    wrong = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert not wrong, f"shapes differ: {list(wrong.items())[:5]}"


def check_outputs(backbone, size, sizes=None):
    """Run a [1, 3, size, size] image; map k must be [1, out_channels[k], s_k, s_k] with
    s_k = sizes[k] or ceil(size / out_strides[k])."""
    backbone.eval()
    with paddle.no_grad():
        feats = backbone(paddle.randn([1, 3, size, size]))
    if sizes is None:
        sizes = [math.ceil(size / s) for s in backbone.out_strides]
    assert len(feats) == len(backbone.out_channels) == len(backbone.out_strides) == len(sizes)
    for feat, channels, cells in zip(feats, backbone.out_channels, sizes):
        assert tuple(feat.shape) == (1, channels, cells, cells)
    return feats


def randomize_state(layer, seed=0):
    """Random values for every entry, BN statistics included (variances positive)."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in layer.state_dict().items():
        a = rng.uniform(-0.2, 0.2, v.shape).astype("float32")
        if k.endswith("_variance"):
            a = rng.uniform(0.5, 1.5, v.shape).astype("float32")
        state[k] = paddle.to_tensor(a)
    layer.set_state_dict(state)


def assert_roundtrip(make, size, tmp_path):
    """save -> load into a fresh model -> identical outputs."""
    paddle.seed(1)
    model = make()
    randomize_state(model)
    model.eval()
    path = str(tmp_path / "backbone.pdparams")
    paddle.save(model.state_dict(), path)
    paddle.seed(2)  # a different random init
    fresh = make()
    fresh.eval()
    image = paddle.randn([1, 3, size, size])
    with paddle.no_grad():
        before = [f.numpy() for f in fresh(image)]
        fresh.set_state_dict(paddle.load(path))
        ours, loaded = model(image), fresh(image)
    assert not all(np.allclose(b, o.numpy()) for b, o in zip(before, ours))
    for a, b in zip(ours, loaded):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---- MobileNetV3 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected", [(16, 16), (12, 16), (18, 24), (36, 40), (84, 88), (56, 56), (5.6, 8)]
)
def test_make_divisible(value, expected):
    # nearest multiple of 8, at least 8, bumped up when rounding loses more than 10%
    assert make_divisible(value) == expected


@pytest.mark.parametrize(
    "name,scale,maps,channels",
    [
        ("large", 1.0, [7, 13, 16], [40, 112, 160]),  # YOLOv3 large
        ("small", 1.0, [4, 9, 12], [24, 48, 96]),  # YOLOv3 small
        ("large", 0.5, [7, 13, 16], [24, 56, 80]),
        ("small", 0.5, [4, 9, 12], [16, 24, 48]),
        ("large", 0.35, [2, 3, 7, 13, 16], [8, 8, 16, 40, 56]),
    ],
)
def test_mobilenet_v3_outputs(name, scale, maps, channels):
    backbone = MobileNetV3(model_name=name, scale=scale, feature_maps=maps)
    assert backbone.out_channels == channels
    assert backbone.out_strides[-3:] == [8, 16, 32]
    check_outputs(backbone, 64)


def test_mobilenet_v3_every_block_and_residuals():
    large = MobileNetV3(model_name="large", scale=0.5, feature_maps=range(2, 17))
    assert large.out_strides == [2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32]
    check_outputs(large, 32)
    small = MobileNetV3(model_name="small", feature_maps=[2, 12])
    assert small.out_strides == [4, 32] and small.out_channels == [16, 96]
    # the input is added back only where a block keeps shape: conv2 of large, not of small
    assert large.blocks[0].use_shortcut and not small.blocks[0].use_shortcut
    assert [b.mid_se is not None for b in small.blocks[:3]] == [True, False, False]


def test_ssdlite_extra_blocks_outputs():
    backbone = MobileNetV3(**SSDLITE)
    # conv14's expansion (before its stride), conv17, then the 4 extra blocks
    assert backbone.out_channels == [672, 480, 512, 256, 256, 128]
    assert backbone.out_strides == [16, 32, 64, 128, 256, 512]
    check_outputs(backbone, 160)  # 10, 5, 3, 2, 1, 1 cells
    plain = MobileNetV3(**dict(SSDLITE, multiplier=1.0, feature_maps=[17]))
    assert plain.out_channels == [960]
    small = MobileNetV3(model_name="small", with_extra_blocks=True, feature_maps=[5, 11, 13, 17])
    assert small.out_channels == [96, 576, 576, 128] and small.out_strides == [8, 32, 32, 512]


def test_conv_bn_same_padding_pads_bottom_right():
    unit = ConvBN(1, 1, 3, stride=2, same_padding=True)
    unit.conv.weight.set_value(paddle.ones([1, 1, 3, 3]))
    unit.eval()  # BN with mean 0, variance 1, weight 1, bias 0: y = x / sqrt(1 + eps)
    x = np.arange(16, dtype="float32").reshape(4, 4)
    out = unit(paddle.to_tensor(x[None, None])).numpy()[0, 0] * np.sqrt(1 + 1e-5)
    # "SAME" on 4 -> 2 pads 0 rows above, 1 below (and likewise for columns)
    expected = [[x[0:3, 0:3].sum(), x[0:3, 2:4].sum()], [x[2:4, 0:3].sum(), x[2:4, 2:4].sum()]]
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_se_module_matches_numpy():
    paddle.seed(3)
    se = SEModule(8)
    x = paddle.randn([2, 8, 3, 3])
    w1, b1 = se.conv1.weight.numpy()[:, :, 0, 0], se.conv1.bias.numpy()  # [2, 8], [2]
    w2, b2 = se.conv2.weight.numpy()[:, :, 0, 0], se.conv2.bias.numpy()  # [8, 2], [8]
    pooled = x.numpy().mean(axis=(2, 3))  # [B, 8]
    gate = np.clip((np.maximum(pooled @ w1.T + b1, 0) @ w2.T + b2) * 0.2 + 0.5, 0, 1)
    np.testing.assert_allclose(se(x).numpy(), x.numpy() * gate[:, :, None, None], rtol=1e-5)


def test_mobilenet_v3_learning_rates():
    backbone = MobileNetV3(**SSDLITE, lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5], freeze_norm=True)

    def lr(param):
        return param.optimize_attr["learning_rate"]

    assert lr(backbone.conv1.conv.weight) == pytest.approx(0.1)
    assert lr(backbone.conv4.expand_conv.conv.weight) == pytest.approx(0.1)  # block 2
    assert lr(backbone.conv5.mid_se.conv1.weight) == pytest.approx(0.2)  # block 3
    assert lr(backbone.conv16.linear_conv.conv.weight) == pytest.approx(0.5)  # block 14
    assert lr(backbone.conv17.conv.weight) == pytest.approx(0.5)
    assert lr(backbone.conv21.depthwise_conv.conv.weight) == pytest.approx(0.5)
    assert lr(backbone.conv16.linear_conv.bn.weight) == 0.0  # frozen norm stays frozen


def test_mobilenet_v3_errors():
    with pytest.raises(ValueError, match="model_name 'medium'"):
        MobileNetV3(model_name="medium")
    with pytest.raises(ValueError, match=r"within 2\.\.16"):
        MobileNetV3(feature_maps=[1, 7])
    with pytest.raises(ValueError, match=r"within 2\.\.12"):
        MobileNetV3(model_name="small", feature_maps=[13])
    with pytest.raises(ValueError, match=r"within 2\.\.21"):
        MobileNetV3(**dict(SSDLITE, feature_maps=[22]))
    with pytest.raises(ValueError, match="pairs"):
        MobileNetV3(with_extra_blocks=True, extra_block_filters=[[256]])


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: MobileNetV3("large", feature_maps=[7, 13, 16]), "backbone_mobilenet_v3_large"),
        (lambda: MobileNetV3("small", feature_maps=[4, 9, 12]), "backbone_mobilenet_v3_small"),
        (lambda: MobileNetV3(**SSDLITE), "ssdlite_mobilenet_v3_large_coco"),
        (lambda: MobileNet(**SSD_V1), "ssd_mobilenet_v1_voc"),
    ],
    ids=["v3_large", "v3_small", "ssdlite", "ssd_v1"],
)
def test_state_dict_matches_paddledetection(make, name):
    assert_matches_list(make(), name)


def test_mobilenet_v3_roundtrip(tmp_path):
    assert_roundtrip(lambda: MobileNetV3(**SSDLITE), 96, tmp_path)


# ---- MobileNetV1 with SSD extra blocks --------------------------------------------------------


def test_mobilenet_v1_ssd_extra_blocks():
    backbone = MobileNet(**SSD_V1)
    assert backbone.out_channels == [512, 1024, 512, 256, 256, 128]
    assert backbone.out_strides == [16, 32, 64, 128, 256, 512]
    narrow = MobileNet(scale=0.25, **SSD_V1)  # extra blocks are not scaled
    assert narrow.out_channels == [128, 256, 512, 256, 256, 128]
    assert tuple(narrow.conv7_1.pointwise_conv._conv.weight.shape) == (256, 256, 1, 1)
    check_outputs(narrow, 300, sizes=[19, 10, 5, 3, 2, 1])  # SSD-300's grid
    with pytest.raises(ValueError, match=r"within 0\.\.13"):
        MobileNet(feature_maps=[13, 14])
    with pytest.raises(ValueError, match=r"within 0\.\.17"):
        MobileNet(feature_maps=[18], with_extra_blocks=True)


def test_mobilenet_v1_conv_learning_rate():
    backbone = MobileNet(conv_learning_rate=0.1, **SSD_V1)

    def lr(param):
        return param.optimize_attr["learning_rate"]

    assert lr(backbone.conv7_4.normal_conv._conv.weight) == pytest.approx(0.1)
    assert lr(backbone.conv1._conv.weight) == pytest.approx(0.1)
    assert lr(backbone.conv1._batch_norm.weight) == 1.0


def test_mobilenet_v1_ssd_roundtrip(tmp_path):
    assert_roundtrip(lambda: MobileNet(scale=0.25, **SSD_V1), 64, tmp_path)


# ---- VGG (SSD) --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg16():
    paddle.seed(4)
    return VGG(depth=16)


def test_vgg_state_dict_matches_paddledetection(vgg16):
    assert_matches_list(vgg16, "backbone_vgg16_ssd")
    assert_matches_list(vgg16, "ssd_vgg16_voc")
    np.testing.assert_array_equal(vgg16.norm0.scale.numpy(), np.full([512], 20.0, "float32"))


def test_vgg_outputs_and_l2norm(vgg16, tmp_path):
    assert vgg16.out_channels == [512, 1024, 512, 256, 256, 256]
    assert vgg16.out_strides == [8, 16, 32, 64, 100, 300]
    # 260: pools round up (130, 65, 33, 17), fc6 keeps 17, conv6/7 halve (9, 5), conv8/9 -2
    feats = check_outputs(vgg16, 260, sizes=[33, 17, 9, 5, 3, 1])
    norms = np.sqrt((feats[0].numpy() ** 2).sum(axis=1))  # [1, 33, 33]
    np.testing.assert_allclose(norms[norms > 0], 20.0, rtol=1e-4)
    assert (feats[1].numpy() >= 0).all()  # ReLU outputs


def test_vgg_depth19_and_errors():
    vgg19 = VGG(depth=19, normalizations=[20.0, 10.0, -1, -1, -1, -1])
    names = vgg19.state_dict().keys()
    assert "conv_block_4.conv3.weight" in names and "conv_block_1.conv2.weight" not in names
    np.testing.assert_array_equal(vgg19.norm1.scale.numpy(), np.full([1024], 10.0, "float32"))
    with pytest.raises(ValueError, match="depth 11"):
        VGG(depth=11)
    with pytest.raises(ValueError, match="normalizations"):
        VGG(normalizations=[20.0, -1])
    with pytest.raises(ValueError, match="extra_block_filters"):
        VGG(extra_block_filters=[[256, 512, 1, 2]] * 4)


def test_vgg_roundtrip(tmp_path):
    paddle.seed(5)
    model = VGG(depth=16)
    with paddle.no_grad():
        model.norm0.scale.set_value(paddle.uniform([512], min=5.0, max=15.0))
    path = str(tmp_path / "vgg.pdparams")
    paddle.save(model.state_dict(), path)
    paddle.seed(6)
    fresh = VGG(depth=16)
    fresh.set_state_dict(paddle.load(path))
    model.eval()
    fresh.eval()
    image = paddle.randn([1, 3, 257, 257])  # the smallest input conv9 accepts
    with paddle.no_grad():
        for a, b in zip(model(image), fresh(image)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
