"""FPN neck: PaddleDetection 2.x parameter names, output shapes/strides, numbers against a
hand-computed case, a NumPy reference and values recorded from paddledet 2.6.0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from ppdet.config.builder import create
from ppdet.config.errors import ConfigError
from ppdet.config.registry import lookup
from ppdet.modeling.necks import FPN

COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "compat"
R50 = [256, 512, 1024, 2048]
RETINA_SCALES = [0.125, 0.0625, 0.03125]


def neck_entries(list_name: str) -> dict[str, list[int]]:
    """``neck.*`` name -> shape from a compat list (``name<TAB>[shape]<TAB>dtype``)."""
    out = {}
    for line in (COMPAT / list_name).read_text().splitlines():
        name, shape, _ = line.split("\t")
        if name.startswith("neck."):
            out[name] = [int(v) for v in shape.strip("[]").split(",")]
    return out


def model_entries(neck: FPN) -> dict[str, list[int]]:
    return {f"neck.{k}": list(v.shape) for k, v in neck.state_dict().items()}


def fpn_lists() -> list[str]:
    """Compat lists whose neck is an FPN (R-CNN FPN family and RetinaNet)."""
    return sorted(
        p.name for p in COMPAT.glob("*.txt") if "neck.fpn_res5_sum.weight" in neck_entries(p.name)
    )


# ---- checkpoint names -------------------------------------------------------------------


def test_registered_as_neck():
    assert lookup("FPN", "neck") is FPN


@pytest.mark.parametrize("list_name", fpn_lists())
def test_names_and_shapes_match_compat_lists(list_name):
    expected = neck_entries(list_name)
    if "neck.fpn_6.weight" in expected:  # RetinaNet: res3-res5, P6/P7 convs on P5
        neck = FPN(R50[1:], 256, RETINA_SCALES, has_extra_convs=True, extra_stage=2, use_c5=False)
    else:  # R-CNN: res2-res5, max-pooled P6
        neck = FPN(R50, 256)
    assert model_entries(neck) == expected


def test_three_seed_lists_present():
    names = fpn_lists()
    for needed in ("faster_rcnn_r50_fpn.txt", "mask_rcnn_r50_fpn.txt", "retinanet_r50_fpn.txt"):
        assert needed in names


def test_legacy_use_c5_fpn6_reads_c5():
    neck = FPN(R50[1:], 256, RETINA_SCALES, has_extra_convs=True, extra_stage=2, use_c5=True)
    shapes = model_entries(neck)
    assert shapes["neck.fpn_6.weight"] == [256, 2048, 3, 3]
    assert shapes["neck.fpn_7.weight"] == [256, 256, 3, 3]


def test_norm_variant_names():
    neck = FPN([8, 16], 32, [0.0625, 0.03125], norm_type="gn")
    assert sorted(neck.state_dict()) == sorted(
        f"{layer}.{p}"
        for layer in (
            "fpn_inner_res4_sum_lateral",
            "fpn_inner_res5_sum",
            "fpn_res4_sum",
            "fpn_res5_sum",
        )
        for p in ("conv.weight", "norm.weight", "norm.bias")
    )
    bn = FPN([8], 4, [0.03125], norm_type="bn", has_extra_convs=True, extra_stage=1)
    assert "fpn_6.norm._variance" in bn.state_dict()
    assert "fpn_6.conv.bias" not in bn.state_dict()


# ---- shapes and strides -----------------------------------------------------------------


def feats_for(in_channels, strides, size=64, batch=1, seed=0):
    rng = np.random.RandomState(seed)
    return [
        paddle.to_tensor(rng.randn(batch, c, size // s, size // s).astype("float32"))
        for c, s in zip(in_channels, strides)
    ]


def test_rcnn_setting_shapes():
    neck = FPN([4, 6, 8, 10], out_channel=8)
    assert neck.out_strides == [4, 8, 16, 32, 64]
    assert neck.spatial_scales == [0.25, 0.125, 0.0625, 0.03125, 0.015625]
    assert neck.out_channels == [8] * 5
    outs = neck(feats_for([4, 6, 8, 10], [4, 8, 16, 32], batch=2))
    assert [o.shape for o in outs] == [
        [2, 8, 16, 16],
        [2, 8, 8, 8],
        [2, 8, 4, 4],
        [2, 8, 2, 2],
        [2, 8, 1, 1],
    ]
    # P6 is a max-pool with kernel 1, stride 2: every other pixel of P5
    np.testing.assert_array_equal(outs[4].numpy(), outs[3].numpy()[:, :, ::2, ::2])


def test_retinanet_setting_shapes():
    neck = FPN([6, 8, 10], 8, RETINA_SCALES, has_extra_convs=True, extra_stage=2, use_c5=False)
    assert neck.out_strides == [8, 16, 32, 64, 128]
    outs = neck(feats_for([6, 8, 10], [8, 16, 32], size=128))
    assert [o.shape for o in outs] == [
        [1, 8, 16, 16],
        [1, 8, 8, 8],
        [1, 8, 4, 4],
        [1, 8, 2, 2],
        [1, 8, 1, 1],
    ]


def test_use_c5_shapes_and_input():
    neck = FPN([6, 8, 10], 8, RETINA_SCALES, has_extra_convs=True, extra_stage=3, use_c5=True)
    assert neck.fpn_6.weight.shape == [8, 10, 3, 3]
    assert neck.out_strides == [8, 16, 32, 64, 128, 256]
    outs = neck(feats_for([6, 8, 10], [8, 16, 32], size=256))
    assert [o.shape[2] for o in outs] == [32, 16, 8, 4, 2, 1]


def test_no_extra_levels_and_odd_sizes():
    neck = FPN([4, 6], 4, [0.0625, 0.03125], extra_stage=0)
    assert neck.out_strides == [16, 32]
    rng = np.random.RandomState(0)
    # 200 px: stride-16 map 13, stride-32 map 7; upsampling follows the lateral's size
    outs = neck(
        [
            paddle.to_tensor(rng.randn(1, 4, 13, 13).astype("float32")),
            paddle.to_tensor(rng.randn(1, 6, 7, 7).astype("float32")),
        ]
    )
    assert [o.shape for o in outs] == [[1, 4, 13, 13], [1, 4, 7, 7]]


# ---- numbers ------------------------------------------------------------------------------


def set_params(neck: FPN, values: dict[str, np.ndarray]) -> None:
    neck.set_state_dict({k: paddle.to_tensor(np.asarray(v, "float32")) for k, v in values.items()})


def test_hand_computed_top_down_sum():
    """1 channel, 1x1 laterals a*x+b and identity 3x3 outputs (centre tap 1, bias 0)."""
    neck = FPN([1, 1], 1, [0.0625, 0.03125])
    identity = np.zeros([1, 1, 3, 3])
    identity[0, 0, 1, 1] = 1
    set_params(
        neck,
        {
            "fpn_inner_res4_sum_lateral.weight": [[[[2.0]]]],
            "fpn_inner_res4_sum_lateral.bias": [1.0],
            "fpn_inner_res5_sum.weight": [[[[3.0]]]],
            "fpn_inner_res5_sum.bias": [-1.0],
            "fpn_res4_sum.weight": identity,
            "fpn_res4_sum.bias": [0.0],
            "fpn_res5_sum.weight": identity,
            "fpn_res5_sum.bias": [0.5],
        },
    )
    c4 = np.arange(16, dtype="float32").reshape(1, 1, 4, 4)
    c5 = np.array([[1, 2], [3, 4]], "float32").reshape(1, 1, 2, 2)
    p4, p5, p6 = (o.numpy()[0, 0] for o in neck([paddle.to_tensor(c4), paddle.to_tensor(c5)]))
    np.testing.assert_allclose(p5, [[2.5, 5.5], [8.5, 11.5]])  # 3 c5 - 1 + 0.5
    top = np.array([[2, 2, 5, 5], [2, 2, 5, 5], [8, 8, 11, 11], [8, 8, 11, 11]])  # 3 c5 - 1, 2x
    np.testing.assert_allclose(p4, 2 * c4[0, 0] + 1 + top)
    np.testing.assert_allclose(p6, [[2.5]])


def conv_ref(x, w, b, stride=1):
    """NumPy 'same' convolution: x [B, Ci, H, W], w [Co, Ci, k, k] -> [B, Co, H', W']."""
    k = w.shape[2]
    pad = (k - 1) // 2
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    h = (x.shape[2] + 2 * pad - k) // stride + 1
    wd = (x.shape[3] + 2 * pad - k) // stride + 1
    out = np.zeros([x.shape[0], w.shape[0], h, wd])
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i : i + stride * h : stride, j : j + stride * wd : stride]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def fpn_ref(p, feats, names, extras, use_c5, relu):
    """NumPy FPN: top-down with nearest 2x upsampling, then stride-2 extra convs."""

    def conv(name, x, stride=1):
        return conv_ref(x, p[f"{name}.weight"], p[f"{name}.bias"], stride)

    inner = conv(f"fpn_inner_{names[-1]}_sum", feats[-1])
    outs = [conv(f"fpn_{names[-1]}_sum", inner)]
    for f, name in zip(feats[-2::-1], names[-2::-1]):
        inner = conv(f"fpn_inner_{name}_sum_lateral", f) + inner.repeat(2, 2).repeat(2, 3)
        outs.insert(0, conv(f"fpn_{name}_sum", inner))
    for j in range(extras):
        x = feats[-1] if j == 0 and use_c5 else outs[-1]
        outs.append(conv(f"fpn_{6 + j}", np.maximum(x, 0) if j > 0 and relu else x, 2))
    return outs


@pytest.mark.parametrize("use_c5,relu", [(False, True), (True, True), (False, False)])
def test_matches_numpy_reference(use_c5, relu):
    paddle.seed(3)
    neck = FPN(
        [3, 5, 7],
        4,
        RETINA_SCALES,
        has_extra_convs=True,
        extra_stage=2,
        use_c5=use_c5,
        relu_before_extra_convs=relu,
    )
    rng = np.random.RandomState(0)
    params = {k: rng.randn(*v.shape).astype("float32") * 0.5 for k, v in neck.state_dict().items()}
    set_params(neck, params)
    xs = [rng.randn(2, c, s, s).astype("float32") for c, s in [(3, 16), (5, 8), (7, 4)]]
    outs = neck([paddle.to_tensor(x) for x in xs])
    refs = fpn_ref(
        params, [x.astype("float64") for x in xs], ["res3", "res4", "res5"], 2, use_c5, relu
    )
    assert len(outs) == len(refs) == 5
    for o, r in zip(outs, refs):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-4, atol=1e-4)


# Recorded from paddledet 2.6.0's FPN (eval mode) with the parameters and inputs of
# `oracle_inputs`: per output level (sum, y[0, 0, 0, 0], y[1, -1, -1, -1]).
ORACLE = {
    "rcnn": (
        dict(in_channels=[4, 6, 8, 10], out_channel=4),
        [16, 8, 4, 2],
        [
            (-4961.407, 3.15099, 0.45007),
            (594.669, 4.48209, -5.86609),
            (60.849, -2.54986, -2.2787),
            (-35.936, -1.63939, 0.59428),
            (-3.323, -1.63939, -0.75093),
        ],
    ),
    "retina": (
        dict(
            in_channels=[6, 8, 10],
            out_channel=4,
            spatial_scales=RETINA_SCALES,
            has_extra_convs=True,
            extra_stage=2,
            use_c5=False,
        ),
        [16, 8, 4],
        [
            (1619.44, 2.10816, 3.91186),
            (-253.115, 3.16379, -5.55726),
            (-19.618, 2.46814, 3.22273),
            (22.127, 5.05944, 1.60326),
            (-82.744, -16.06647, -6.85505),
        ],
    ),
    "retina_c5": (
        dict(
            in_channels=[6, 8, 10],
            out_channel=4,
            spatial_scales=RETINA_SCALES,
            has_extra_convs=True,
            extra_stage=3,
            use_c5=True,
        ),
        [16, 8, 4],
        [
            (4860.03, 5.9832, 2.48745),
            (-266.794, -1.43048, 0.55631),
            (-35.26, 3.08096, -7.16586),
            (82.286, 6.31705, -2.59455),
            (33.042, 8.92134, 0.41846),
            (-19.03, -11.40782, 1.14705),
        ],
    ),
    "retina_norelu": (
        dict(
            in_channels=[6, 8, 10],
            out_channel=4,
            spatial_scales=RETINA_SCALES,
            has_extra_convs=True,
            extra_stage=2,
            use_c5=False,
            relu_before_extra_convs=False,
        ),
        [16, 8, 4],
        [
            (1619.44, 2.10816, 3.91186),
            (-253.115, 3.16379, -5.55726),
            (-19.618, 2.46814, 3.22273),
            (22.127, 5.05944, 1.60326),
            (-26.037, -3.61287, -6.25888),
        ],
    ),
    "odd_p6": (
        dict(in_channels=[4, 6, 8, 10], out_channel=4),
        [24, 12, 6, 3],
        [
            (-8473.836, -4.11208, -2.17851),
            (2309.515, 0.76019, -5.39388),
            (291.839, 3.91952, 1.00438),
            (-83.122, -2.35541, 8.65933),
            (-7.182, -2.35541, 8.65933),
        ],
    ),
    "gn": (
        dict(in_channels=[4, 6, 8, 10], out_channel=32, norm_type="gn"),
        [8, 4, 2, 1],
        [
            (48.868, 0.20954, 0.11066),
            (-48.173, -0.25067, -0.4056),
            (23.573, -1.44607, 0.30481),
            (-0.102, 0.34563, -0.05707),
            (-0.102, 0.34563, -0.05707),
        ],
    ),
    "bn": (
        dict(
            in_channels=[6, 8, 10],
            out_channel=4,
            spatial_scales=RETINA_SCALES,
            norm_type="bn",
            has_extra_convs=True,
            extra_stage=2,
            use_c5=False,
        ),
        [8, 4, 2],
        [
            (-506.536, -0.33067, -0.38645),
            (-33.307, 0.93621, 0.02423),
            (15.703, 0.60026, 0.30348),
            (0.504, 0.03459, -0.14624),
            (1.415, 0.18789, 0.59555),
        ],
    ),
}


def oracle_inputs(neck: FPN, in_channels, sizes):
    """Parameters: sorted names, RandomState(0), N(0, 0.25) (BN variances U(0.5, 2)); inputs:
    RandomState(1), N(0, 1), batch 2."""
    rng = np.random.RandomState(0)
    values = {}
    for k, v in sorted(neck.state_dict().items()):
        if k.endswith("_variance"):
            values[k] = rng.uniform(0.5, 2.0, v.shape).astype("float32")
        else:
            values[k] = (rng.randn(*v.shape) * 0.5).astype("float32")
    set_params(neck, values)
    rng = np.random.RandomState(1)
    return [
        paddle.to_tensor(rng.randn(2, c, s, s).astype("float32"))
        for c, s in zip(in_channels, sizes)
    ]


@pytest.mark.parametrize("case", sorted(ORACLE))
def test_matches_recorded_paddledet_outputs(case):
    kw, sizes, expected = ORACLE[case]
    neck = FPN(**kw)
    neck.eval()
    outs = neck(oracle_inputs(neck, kw["in_channels"], sizes))
    got = [
        (float(o.numpy().astype("float64").sum()), float(o[0, 0, 0, 0]), float(o[1, -1, -1, -1]))
        for o in outs
    ]
    assert len(got) == len(expected)
    np.testing.assert_allclose([g[0] for g in got], [e[0] for e in expected], rtol=1e-5, atol=5e-3)
    np.testing.assert_allclose([g[1:] for g in got], [e[1:] for e in expected], atol=5e-5)


# ---- init, training, save/load ------------------------------------------------------------


def test_init_xavier_with_fan_out_and_zero_bias():
    paddle.seed(0)
    neck = FPN([64, 128], 32, [0.0625, 0.03125], has_extra_convs=True, extra_stage=2)
    # name -> (fan_in = in * k * k, fan_out as set: the input size, 288 = 32 * 9 for extras)
    fans = {
        "fpn_inner_res4_sum_lateral": (64, 64),
        "fpn_inner_res5_sum": (128, 128),
        "fpn_res4_sum": (288, 288),
        "fpn_res5_sum": (288, 288),
        "fpn_6": (1152, 288),
        "fpn_7": (288, 288),
    }
    for name, (fan_in, fan_out) in fans.items():
        w = getattr(neck, name).weight.numpy()
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        assert limit * 0.95 < np.abs(w).max() <= limit + 1e-6, name
        np.testing.assert_array_equal(getattr(neck, name).bias.numpy(), 0)


def test_backward_reaches_every_parameter():
    neck = FPN([4, 6], 4, [0.0625, 0.03125], has_extra_convs=True, extra_stage=2)
    outs = neck(feats_for([4, 6], [16, 32], size=128))
    paddle.add_n([o.sum() for o in outs]).backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), name


def test_save_load_round_trip(tmp_path):
    kw = dict(in_channels=[4, 6], out_channel=4, spatial_scales=[0.0625, 0.03125])
    paddle.seed(1)
    a = FPN(**kw)
    paddle.seed(2)
    b = FPN(**kw)
    feats = feats_for([4, 6], [16, 32])
    assert not np.allclose(a(feats)[0].numpy(), b(feats)[0].numpy())
    paddle.save(a.state_dict(), str(tmp_path / "fpn.pdparams"))
    b.set_state_dict(paddle.load(str(tmp_path / "fpn.pdparams")))
    for x, y in zip(a(feats), b(feats)):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


# ---- errors -------------------------------------------------------------------------------


def test_mismatched_spatial_scales_is_clear():
    with pytest.raises(ValueError, match=r"spatial_scales has 4 entries but in_channels has 3"):
        FPN([512, 1024, 2048])
    with pytest.raises(ValueError, match="halve"):
        FPN([4, 8], spatial_scales=[0.125, 0.03125])


def test_config_error_names_the_key():
    with pytest.raises(ConfigError, match=r"FPN: .*spatial_scales has 4 entries"):
        create("FPN", {"out_channel": 8}, in_channels=[4, 8])
    neck = create("FPN", {"spatial_scales": [0.0625, 0.03125]}, in_channels=[4, 8])
    assert neck.out_channels == [256, 256, 256]


def test_other_errors():
    with pytest.raises(ValueError, match="extra_stage 2"):
        FPN([4], 4, [0.03125], extra_stage=2)
    with pytest.raises(ValueError, match="in_channels is empty"):
        FPN([], 4, [])
    neck = FPN([4, 6], 4, [0.0625, 0.03125])
    with pytest.raises(ValueError, match="FPN expects 2 maps"):
        neck(feats_for([6], [32]))
