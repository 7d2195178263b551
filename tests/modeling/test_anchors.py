"""Anchor and SSD prior generators: hand values, order, and numbers from PaddleDetection 2.6.0."""

import math
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppdet.modeling.anchors import AnchorGenerator, AnchorGeneratorSSD, RetinaAnchorGenerator
from ppdet.modeling.anchors.prior_box import expand_aspect_ratios, ssd_sizes_from_ratios

FPN = {
    "anchor_sizes": [[32], [64], [128], [256], [512]],
    "aspect_ratios": [0.5, 1.0, 2.0],
    "strides": [4, 8, 16, 32, 64],
}
FPN_GRIDS = [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)]
RETINA_GRIDS = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]


def reference_anchors(sizes, ratios, stride, h, w, offset=0.0):
    """NumPy float64 reference: size-major cells, row-major locations."""
    cells = []
    for s in sizes:
        for r in ratios:
            aw, ah = s / math.sqrt(r), s * math.sqrt(r)
            cells.append([-aw / 2, -ah / 2, aw / 2, ah / 2])
    ys, xs = np.meshgrid(
        (np.arange(h) + offset) * stride, (np.arange(w) + offset) * stride, indexing="ij"
    )
    shifts = np.stack([xs, ys, xs, ys], -1).reshape(-1, 1, 4)
    return (shifts + np.asarray(cells)[None]).reshape(-1, 4)


def test_cell_anchor_hand_values():
    gen = AnchorGenerator(anchor_sizes=[32], aspect_ratios=[0.5, 1.0, 2.0], strides=[16])
    a = gen([(1, 1)])[0].numpy()
    s = 32 / math.sqrt(2)  # 22.627...
    # ratio = h / w, area = size^2, centred on (0, 0) with offset 0
    np.testing.assert_allclose(
        a, [[-s, -s / 2, s, s / 2], [-16, -16, 16, 16], [-s / 2, -s, s / 2, s]], rtol=1e-6
    )
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    np.testing.assert_allclose(w * h, 1024, rtol=1e-6)
    np.testing.assert_allclose(h / w, [0.5, 1, 2], rtol=1e-6)


def test_c4_order_count_and_2x_numbers():
    gen = AnchorGenerator()  # 2.x defaults: C4 RPN, sizes 32..512, ratios [0.5, 1, 2], stride 16
    assert gen.num_anchors == 15
    a = gen([paddle.zeros([1, 8, 50, 77])])[0]
    assert a.shape == [50 * 77 * 15, 4] and a.dtype == paddle.float32
    ref = reference_anchors([32, 64, 128, 256, 512], [0.5, 1, 2], 16, 50, 77)
    np.testing.assert_allclose(a.numpy(), ref, rtol=1e-6, atol=1e-4)
    # recorded from paddledet 2.6.0: index = (y * W + x) * 15 + size_index * 3 + ratio_index
    recorded = {
        0: [-22.627416610717773, -11.313708305358887, 22.627416610717773, 11.313708305358887],
        7: [-64.0, -64.0, 64.0, 64.0],
        14: [-181.0193328857422, -362.0386657714844, 181.0193328857422, 362.0386657714844],
        (3 * 77 + 5) * 15 + 7: [16.0, -16.0, 144.0, 112.0],
        (49 * 77 + 76) * 15 + 14: [
            1034.980712890625,
            421.9613342285156,
            1397.019287109375,
            1146.0386962890625,
        ],
    }
    np.testing.assert_array_equal(a.numpy()[list(recorded)], np.float32(list(recorded.values())))


def test_fpn_levels_and_2x_numbers():
    gen = AnchorGenerator(**FPN)
    assert gen.num_anchors == 3 and gen.num_levels == 5
    levels = gen(FPN_GRIDS)
    assert [x.shape[0] for x in levels] == [h * w * 3 for h, w in FPN_GRIDS]
    for lvl, ((h, w), stride, size) in enumerate(
        zip(FPN_GRIDS, FPN["strides"], [32, 64, 128, 256, 512])
    ):
        ref = reference_anchors([size], [0.5, 1, 2], stride, h, w)
        np.testing.assert_allclose(levels[lvl].numpy(), ref, rtol=1e-6, atol=1e-4)
    # recorded from paddledet 2.6.0
    np.testing.assert_array_equal(
        levels[0].numpy()[(10 * 336 + 20) * 3],
        np.float32([57.372581481933594, 28.686290740966797, 102.6274185180664, 51.3137092590332]),
    )
    np.testing.assert_array_equal(
        levels[4].numpy()[-1],
        np.float32([1098.980712890625, 405.9613342285156, 1461.019287109375, 1130.0386962890625]),
    )
    # offset 0.5: centres in the middle of the cells
    half = AnchorGenerator(**FPN, offset=0.5)(FPN_GRIDS)
    np.testing.assert_array_equal(
        half[2].numpy()[(7 * 84 + 3) * 3 + 1], np.float32([-8.0, 56.0, 120.0, 184.0])
    )
    np.testing.assert_allclose(half[1].numpy() - levels[1].numpy(), 4.0, atol=1e-4)


def test_retina_octave_scales_and_2x_numbers():
    gen = RetinaAnchorGenerator()
    assert gen.num_anchors == 9
    for stride, sizes in zip([8, 16, 32, 64, 128], gen.anchor_sizes):
        np.testing.assert_allclose(sizes, [4 * stride * 2 ** (k / 3) for k in range(3)])
    np.testing.assert_allclose(gen.anchor_sizes[0], [32.0, 40.31747359663594, 50.79683366298238])
    levels = gen(RETINA_GRIDS)
    assert [x.shape[0] for x in levels] == [h * w * 9 for h, w in RETINA_GRIDS]
    # recorded from paddledet 2.6.0: the 9 anchors of location (0, 0) at stride 8, size-major
    np.testing.assert_array_equal(
        levels[0].numpy()[:9],
        np.float32(
            [
                [-22.627416610717773, -11.313708305358887, 22.627416610717773, 11.313708305358887],
                [-16.0, -16.0, 16.0, 16.0],
                [-11.313708305358887, -22.627416610717773, 11.313708305358887, 22.627416610717773],
                [-28.508758544921875, -14.254379272460938, 28.508758544921875, 14.254379272460938],
                [-20.158737182617188, -20.158737182617188, 20.158737182617188, 20.158737182617188],
                [-14.254379272460938, -28.508758544921875, 14.254379272460938, 28.508758544921875],
                [-35.918785095214844, -17.959392547607422, 35.918785095214844, 17.959392547607422],
                [-25.39841651916504, -25.39841651916504, 25.39841651916504, 25.39841651916504],
                [-17.959392547607422, -35.918785095214844, 17.959392547607422, 35.918785095214844],
            ]
        ),
    )
    np.testing.assert_array_equal(
        levels[2].numpy()[(4 * 42 + 9) * 9 + 5],
        np.float32([230.98248291015625, 13.9649658203125, 345.01751708984375, 242.0350341796875]),
    )
    np.testing.assert_array_equal(
        levels[4].numpy()[-1],
        np.float32([992.6497192382812, 193.2994384765625, 1567.350341796875, 1342.7005615234375]),
    )


def test_inputs_feature_maps_or_sizes_and_empty_grid():
    gen = AnchorGenerator(anchor_sizes=[[16], [32]], aspect_ratios=[1.0], strides=[8, 16])
    from_maps = gen([paddle.zeros([2, 4, 3, 5]), paddle.zeros([2, 4, 2, 3])])
    from_sizes = gen([(3, 5), (2, 3)])
    for a, b in zip(from_maps, from_sizes):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert gen([(0, 5), (2, 0)])[0].shape == [0, 4]


def test_per_level_settings_and_errors():
    # a flat list is shared by every level; per-level lists may differ in content
    gen = AnchorGenerator(anchor_sizes=[32, 64], aspect_ratios=[[1.0], [2.0]], strides=[4, 8])
    assert gen.anchor_sizes == [[32.0, 64.0], [32.0, 64.0]] and gen.num_anchors == 2
    a = gen([(1, 1), (1, 1)])
    np.testing.assert_allclose(
        a[1].numpy()[1],
        [-32 / math.sqrt(2), -32 * math.sqrt(2), 32 / math.sqrt(2), 32 * math.sqrt(2)],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="3 levels but strides has 2"):
        AnchorGenerator(anchor_sizes=[[32], [64], [128]], strides=[4, 8])
    with pytest.raises(ValueError, match="different anchor counts"):
        AnchorGenerator(anchor_sizes=[[32, 48], [64]], aspect_ratios=[1.0], strides=[4, 8])
    with pytest.raises(ValueError, match="got 1 feature levels"):
        gen([(2, 2)])
    with pytest.raises(ValueError, match="strides"):
        AnchorGenerator(strides=[0])


def test_static_graph_with_unknown_size():
    gen = AnchorGenerator(anchor_sizes=[[32], [64]], aspect_ratios=[0.5, 1.0, 2.0], strides=[4, 8])

    def f(x):
        return gen([x, x[:, :, ::2, ::2]])[1]

    static = paddle.jit.to_static(
        f, input_spec=[paddle.static.InputSpec([1, 2, None, None], "float32")], full_graph=True
    )
    x = paddle.zeros([1, 2, 6, 10])
    np.testing.assert_array_equal(static(x).numpy(), f(x).numpy())


# ---------------------------------------------------------------- SSD prior boxes

VGG_SSD = {"min_max_aspect_ratios_order": True}  # 2.x defaults otherwise (VOC 300x300)
MBV1_SSD = {
    "steps": [0, 0, 0, 0, 0, 0],
    "aspect_ratios": [[2.0], [2.0, 3.0], [2.0, 3.0], [2.0, 3.0], [2.0, 3.0], [2.0, 3.0]],
    "min_sizes": [60.0, 105.0, 150.0, 195.0, 240.0, 285.0],
    "max_sizes": [[], 150.0, 195.0, 240.0, 285.0, 300.0],
    "clip": True,
}


def test_ssd_aspect_ratio_expansion_and_derived_sizes():
    np.testing.assert_allclose(
        expand_aspect_ratios([2.0, 3.0], flip=True), [1, 2, 0.5, 3, 1 / 3], rtol=1e-6
    )
    assert expand_aspect_ratios([2.0, 1.0, 2.0], flip=False) == [1.0, 2.0]
    mins, maxs = ssd_sizes_from_ratios(6, 15, 90, 300)  # step floor(75 / 4) = 18
    np.testing.assert_allclose(mins, [30, 45, 99, 153, 207, 261])
    np.testing.assert_allclose(maxs, [60, 99, 153, 207, 261, 315])
    gen = AnchorGeneratorSSD(min_sizes=[], max_sizes=[])
    assert gen.min_sizes[1] == [45.0]


def test_ssd_vgg_2x_numbers():
    gen = AnchorGeneratorSSD(**VGG_SSD)
    assert gen.num_priors == [4, 6, 6, 6, 4, 4]
    sizes = [38, 19, 10, 5, 3, 1]
    priors = gen([(s, s) for s in sizes], paddle.zeros([1, 3, 300, 300]))
    assert [p.shape[0] for p in priors] == [s * s * n for s, n in zip(sizes, gen.num_priors)]
    # recorded from paddledet 2.6.0: location (x=7, y=2) of the 19x19 level (step 16, min 60,
    # max 111): min square, max square, then ratios 2, 1/2, 3, 1/3
    np.testing.assert_array_equal(
        priors[1].numpy()[(2 * 19 + 7) * 6 : (2 * 19 + 8) * 6],
        np.float32(
            [
                [0.30000001192092896, 0.03333333507180214, 0.5, 0.23333333432674408],
                [0.263985276222229, -0.0026813761796802282, 0.5360147356987, 0.26934805512428284],
                [0.25857865810394287, 0.06262265890836716, 0.5414213538169861, 0.20404401421546936],
                [
                    0.3292893171310425,
                    -0.008088022470474243,
                    0.4707106649875641,
                    0.27475470304489136,
                ],
                [0.22679491341114044, 0.07559830695390701, 0.5732050538063049, 0.1910683661699295],
                [0.34226495027542114, -0.03987174853682518, 0.4577350318431854, 0.3065384030342102],
            ]
        ),
    )
    np.testing.assert_array_equal(
        priors[5].numpy(),
        np.float32(
            [
                [0.05999999865889549, 0.05999999865889549, 0.9399999976158142, 0.9399999976158142],
                [
                    0.019375406205654144,
                    0.019375406205654144,
                    0.9806246161460876,
                    0.9806246161460876,
                ],
                [-0.12225397676229477, 0.18887300789356232, 1.1222540140151978, 0.8111270070075989],
                [0.18887300789356232, -0.12225397676229477, 0.8111270070075989, 1.1222540140151978],
            ]
        ),
    )


def test_ssd_mobilenet_style_2x_numbers():
    gen = AnchorGeneratorSSD(**MBV1_SSD)
    assert gen.num_priors == [3, 6, 6, 6, 6, 6]  # no max prior on the first level
    priors = gen([paddle.zeros([1, 1, s, s]) for s in [19, 10, 5, 3, 2, 1]], (300, 300))
    # recorded from paddledet 2.6.0 (step = 300 / feature size, clipped to [0, 1])
    np.testing.assert_array_equal(
        priors[0].numpy()[:3],
        np.float32(
            [
                [0.0, 0.0, 0.12631578743457794, 0.12631578743457794],
                [0.0, 0.0, 0.16773714125156403, 0.09702646732330322],
                [0.0, 0.0, 0.09702646732330322, 0.16773714125156403],
            ]
        ),
    )
    np.testing.assert_array_equal(
        priors[4].numpy()[18:24],
        np.float32(
            [
                [0.3499999940395355, 0.3499999940395355, 1.0, 1.0],
                [0.1843145787715912, 0.4671572744846344, 1.0, 1.0],
                [0.4671572744846344, 0.1843145787715912, 1.0, 1.0],
                [0.05717966705560684, 0.5190598368644714, 1.0, 0.9809401631355286],
                [0.5190598964691162, 0.05717966705560684, 0.9809401631355286, 1.0],
                [0.3141101002693176, 0.3141101002693176, 1.0, 1.0],
            ]
        ),
    )
    for p in priors:
        assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0


@pytest.mark.parametrize("min_max_order", [False, True])
def test_ssd_matches_paddle_prior_box(min_max_order):
    """Cross-check with paddle.vision.ops.prior_box (several min sizes, a non-square image)."""
    prior_box = getattr(paddle.vision.ops, "prior_box", None)
    if prior_box is None:
        pytest.skip("paddle.vision.ops.prior_box is gone from this Paddle")
    feat, image = paddle.zeros([1, 1, 3, 4]), paddle.zeros([1, 3, 48, 80])
    kw = {"aspect_ratios": [2.0, 3.0], "flip": True, "clip": False, "offset": 0.5}
    ref, _ = prior_box(
        feat,
        image,
        min_sizes=[20.0, 30.0],
        max_sizes=[40.0, 45.0],
        steps=[20.0, 16.0],
        min_max_aspect_ratios_order=min_max_order,
        **kw,
    )  # [H, W, P, 4], x step 20 and y step 16
    assert ref.shape[2] == 12
    gen = AnchorGeneratorSSD(
        steps=[0],
        aspect_ratios=[[2.0, 3.0]],
        min_sizes=[[20.0, 30.0]],
        max_sizes=[[40.0, 45.0]],
        min_max_aspect_ratios_order=min_max_order,
    )  # step 0: 80 / 4 = 20 across, 48 / 3 = 16 down
    assert gen.num_priors == [12]
    out = gen([feat], image)[0]
    np.testing.assert_allclose(out.numpy(), ref.numpy().reshape(-1, 4), rtol=1e-6, atol=1e-7)


def test_ssd_errors():
    with pytest.raises(ValueError, match="one entry per level"):
        AnchorGeneratorSSD(
            steps=[8, 16], aspect_ratios=[[2.0], [2.0]], min_sizes=[30.0], max_sizes=[60.0]
        )
    with pytest.raises(ValueError, match="aspect_ratios has 1 levels"):
        AnchorGeneratorSSD(
            steps=[8, 16], aspect_ratios=[[2.0]], min_sizes=[30.0, 60.0], max_sizes=[60.0, 90.0]
        )
    with pytest.raises(ValueError, match=">= 3 levels"):
        AnchorGeneratorSSD(steps=[8, 16], aspect_ratios=[[2.0], [2.0]], min_sizes=[], max_sizes=[])
    gen = AnchorGeneratorSSD(steps=[8], aspect_ratios=[[2.0]], min_sizes=[30.0], max_sizes=[[]])
    assert gen.num_priors == [3]
    with pytest.raises(ValueError, match="got 2 feature levels"):
        gen([(2, 2), (1, 1)], (16, 16))


def test_anchors_of_a_grid_size_are_made_once():
    gen = AnchorGenerator([[32], [64]], [0.5, 1.0, 2.0], [8, 16])
    first = gen([(4, 6), (2, 3)])
    again = gen([paddle.zeros([1, 8, 4, 6]), (2, 3)])  # a map or a size: the same grid
    assert all(a is b for a, b in zip(first, again))  # reused, not recomputed
    other = gen([(5, 6), (3, 3)])
    assert other[0].shape == [5 * 6 * 3, 4] and other[0] is not first[0]
    np.testing.assert_array_equal(
        other[0].numpy()[: 4 * 6 * 3], first[0].numpy()
    )  # row-major: the first 4 rows of cells agree
    ssd = AnchorGeneratorSSD(steps=[8, 16], aspect_ratios=[[2.0], [2.0]], min_sizes=[30, 60],
                             max_sizes=[60, 110])  # fmt: skip
    priors = ssd([(4, 4), (2, 2)], (32, 32))
    assert ssd([(4, 4), (2, 2)], (32, 32))[1] is priors[1]
    wider = ssd([(4, 4), (2, 2)], (32, 64))  # another image size: other fractions
    assert not np.array_equal(wider[0].numpy(), priors[0].numpy())
    for i in range(gen.cache.size + 5):  # bounded: the oldest grids are dropped
        gen([(i + 1, 1), (1, 1)])
    assert len(gen.cache.entries) == gen.cache.size


# ---------------------------------------------------------------- fluid (v0.1) anchors


def _legacy_op(h, w, sizes, ratios, stride, offset=0.5):
    """Paddle's legacy ``anchor_generator`` kernel (fluid's), reordered size-major: [H*W*A, 4]."""
    from paddle import _legacy_C_ops

    out, _ = _legacy_C_ops.anchor_generator(
        paddle.zeros([1, 1, h, w]), "anchor_sizes", [float(s) for s in sizes],
        "aspect_ratios", [float(r) for r in ratios], "variances", [1.0] * 4,
        "stride", [float(stride)] * 2, "offset", float(offset),
    )  # fmt: skip
    out = out.numpy()  # [H, W, A, 4], index ratio_i * n_sizes + size_i
    perm = [r * len(sizes) + s for s in range(len(sizes)) for r in range(len(ratios))]
    return out[:, :, perm].reshape(-1, 4)


def test_fluid_anchors_equal_fluid_1_8_5():
    # fluid.layers.anchor_generator (fluid 1.8.5) on a 2x2 map, sizes [256], ratios [0.5, 1, 2],
    # stride 32, offset 0.5, location (y, x) = (1, 1): base height round(45 * 0.5) = 23 (C
    # rounding; numpy's would give 22), centre 32 + 15.5, corners -+ (w - 1) / 2
    gen = AnchorGenerator([256.0], [0.5, 1.0, 2.0], [32.0], offset=0.5, fluid=True)
    got = gen([(2, 2)])[0].numpy().reshape(2, 2, 3, 4)[1, 1]
    np.testing.assert_array_equal(
        got, [[-132, -44, 227, 139], [-80, -80, 175, 175], [-44, -136, 139, 231]]
    )
    # v0.1 RetinaNet's first octave sizes at stride 16, location (0, 1); fluid's order is
    # ratio-major (ratios 1, 2, 0.5), ours size-major: fluid anchor r * 2 + s is our s * 3 + r
    fluid = [
        [-8, -24, 55, 39],
        [-16.31747, -32.31747, 63.31747, 47.31747],
        [2, -36, 45, 51],
        [-3.718262, -47.436523, 50.71826, 62.436523],
        [-22, -16, 69, 31],
        [-33.956364, -22.238102, 80.95636, 37.238102],
    ]
    gen = AnchorGenerator([64.0, 80.63494], [1.0, 2.0, 0.5], [16.0], offset=0.5, fluid=True)
    got = gen([(2, 2)])[0].numpy().reshape(2, 2, 6, 4)[0, 1]
    ours_of_fluid = [s * 3 + r for r in range(3) for s in range(2)]
    np.testing.assert_allclose(got[ours_of_fluid], fluid, atol=1e-4)
    assert gen.conventions == {"anchor_rounding": "fluid"}
    assert AnchorGenerator().conventions == {}


@pytest.mark.parametrize(
    "gen, grids",
    [
        (AnchorGenerator(offset=0.5, fluid=True), [(7, 11)]),  # C4 RPN, 15 anchors
        (AnchorGenerator(offset=0.5, fluid=True, **FPN), [(h // 8, w // 8) for h, w in FPN_GRIDS]),
        (RetinaAnchorGenerator(offset=0.5, fluid=True), [(h // 4 + 1, w // 4 + 1) for h, w in RETINA_GRIDS]),
    ],
    ids=["c4", "fpn", "retina"],
)  # fmt: skip
def test_fluid_anchors_equal_paddles_legacy_kernel(gen, grids):
    levels = gen(grids)
    for (h, w), sizes, ratios, stride, got in zip(
        grids, gen.anchor_sizes, gen.aspect_ratios, gen.strides, levels
    ):
        np.testing.assert_array_equal(got.numpy(), _legacy_op(h, w, sizes, ratios, stride))


def test_fluid_anchors_static_graph_and_2x_unchanged():
    gen = RetinaAnchorGenerator(offset=0.5, fluid=True)

    def f(x):
        return gen([x] * 5)[3]

    static = paddle.jit.to_static(
        f, input_spec=[paddle.static.InputSpec([1, 2, None, None], "float32")], full_graph=True
    )
    x = paddle.zeros([1, 2, 3, 5])
    np.testing.assert_array_equal(static(x).numpy(), f(x).numpy())
    np.testing.assert_array_equal(
        f(x).numpy(), _legacy_op(3, 5, gen.anchor_sizes[3], [0.5, 1, 2], 64)
    )
    # not fluid: the 2.x anchors (area s^2, centre (x + offset) * stride, no -1)
    plain = RetinaAnchorGenerator(offset=0.5)([(1, 1)] * 5)[0].numpy()
    np.testing.assert_allclose(plain[1], [4 - 16, 4 - 16, 4 + 16, 4 + 16])


def test_wh_factor_anchors_hand_values():
    """EfficientDet's (w, h) pairs: w = size * fw, h = size * fh, size-major, centres at
    (x + 0.5) * stride (the official implementation and PaddleDetection 0.5's AnchorGrid)."""
    gen = RetinaAnchorGenerator(
        octave_base_scale=4,
        scales_per_octave=3,
        wh_factors=[[1.0, 1.0], [1.4, 0.7], [0.7, 1.4]],
        offset=0.5,
        strides=[8, 16],
    )
    assert gen.num_anchors == 9
    p3, p4 = (a.numpy() for a in gen([(1, 2), (1, 1)]))
    assert p3.shape == (2 * 9, 4) and p4.shape == (9, 4)
    # stride 8, location (0, 0) centred at (4, 4); sizes 32, 32 * 2^(1/3), 32 * 2^(2/3)
    s1 = 32 * 2 ** (1 / 3)  # 40.3175
    expected_first = [
        [4 - 16, 4 - 16, 4 + 16, 4 + 16],  # (1, 1): 32 x 32
        [4 - 22.4, 4 - 11.2, 4 + 22.4, 4 + 11.2],  # (1.4, 0.7): 44.8 x 22.4
        [4 - 11.2, 4 - 22.4, 4 + 11.2, 4 + 22.4],  # (0.7, 1.4): 22.4 x 44.8
        [4 - s1 / 2, 4 - s1 / 2, 4 + s1 / 2, 4 + s1 / 2],  # next size, (1, 1)
        [4 - 0.7 * s1, 4 - 0.35 * s1, 4 + 0.7 * s1, 4 + 0.35 * s1],
    ]
    np.testing.assert_allclose(p3[:5], expected_first, rtol=1e-5)
    # the second location (x = 1) is the same cell shifted by one stride in x
    np.testing.assert_allclose(p3[9:], p3[:9] + [8, 0, 8, 0], rtol=1e-6)
    # stride 16: centre (8, 8), largest size 64 * 2^(2/3) = 101.59 as (0.7, 1.4)
    s2 = 64 * 2 ** (2 / 3)
    np.testing.assert_allclose(
        p4[8], [8 - 0.35 * s2, 8 - 0.7 * s2, 8 + 0.35 * s2, 8 + 0.7 * s2], rtol=1e-5
    )


def test_wh_factors_equal_paddledetection_0_5_anchor_grid():
    """Against PaddleDetection 0.5's AnchorGrid formulas (configs/efficientdet_d0.yml values)
    restated in NumPy: cell = outer(scales, w / h factors) * stride * 4, centres stride // 2 +
    k * stride, scale-major, row-major locations."""
    ratios = np.array([[1, 1], [1.4, 0.7], [0.7, 1.4]])
    scales = np.array([2 ** (i / 3) for i in range(3)])
    ws = np.outer(scales, ratios[:, 0]).reshape(-1, 1)
    hs = np.outer(scales, ratios[:, 1]).reshape(-1, 1)
    cell = np.hstack((-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs))
    image = 128
    gen = RetinaAnchorGenerator(
        octave_base_scale=4,
        scales_per_octave=3,
        wh_factors=ratios.tolist(),
        offset=0.5,
        strides=[8, 16, 32, 64, 128],
    )
    strides = [8, 16, 32, 64, 128]
    ours = gen([(image // t, image // t) for t in strides])
    for level, stride in enumerate(strides):
        steps = np.arange(stride // 2, image, stride)
        ox, oy = np.meshgrid(steps, steps)
        offsets = np.stack([ox.ravel(), oy.ravel(), ox.ravel(), oy.ravel()], -1)[:, None, :]
        ref = (cell * stride * 4 + offsets).reshape(-1, 4)
        np.testing.assert_allclose(ours[level].numpy(), ref, rtol=1e-5, atol=1e-4)


def test_wh_factors_errors_and_retina_default_unchanged():
    with pytest.raises(ValueError, match="wh_factors"):
        RetinaAnchorGenerator(wh_factors=[[1.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="wh_factors"):
        RetinaAnchorGenerator(wh_factors=[[1.0, 0.0]])
    with pytest.raises(ValueError, match="fluid"):
        RetinaAnchorGenerator(wh_factors=[[1.0, 1.0]], fluid=True)
    # RetinaNet's anchors (aspect ratios h / w, area size^2, offset 0) are what they were
    a = RetinaAnchorGenerator(strides=[8])([(1, 1)])[0].numpy()
    np.testing.assert_allclose(
        a,
        reference_anchors([32, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)], [0.5, 1, 2], 8, 1, 1),
        rtol=1e-6,
    )


def test_efficientdet_configs_use_the_published_anchors():
    import ppdet

    repo = Path(__file__).resolve().parents[2]
    for rel in ("efficientdet_d0_coco.yml", "efficientdet_d0_evonorm_giou_120k_coco.yml"):
        cfg = ppdet.load_config(str(repo / "configs" / "efficientdet" / rel))
        spec = dict(cfg["EfficientDetHead"]["anchor_generator"])
        spec.pop("name")
        gen = RetinaAnchorGenerator(**spec)
        assert gen.wh_factors == [[1.0, 1.0], [1.4, 0.7], [0.7, 1.4]] and gen.offset == 0.5
        assert gen.num_anchors == 9 and gen.strides == [8.0, 16.0, 32.0, 64.0, 128.0]
    retina = ppdet.load_config(
        str(repo / "configs" / "retinanet" / "retinanet_r50_fpn_1x_coco.yml")
    )
    assert "wh_factors" not in retina["RetinaHead"]["anchor_generator"]
