"""Legacy v0.1 checkpoints: the fluid record format, the name/shape maps of every seed-zoo row
against the 2.x compat lists, value transforms, and an end-to-end YOLOv3 round trip."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppdet.zoo.legacy import (
    LEGACY_MODELS,
    LegacyError,
    convert,
    convert_shapes,
    detect_model,
    is_legacy,
    legacy_shapes,
    map_shapes,
    to_legacy,
    write_legacy_tar,
)
from ppdet.zoo.legacy_families import BEHAVIOURS, FAMILIES, family_of
from ppdet.zoo.legacy_format import parse_record, read_record, serialize_record, split_combined
from ppdet.zoo.legacy_rules import RETINA_PERM, RPN_C4_PERM

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def read_list(path: Path) -> dict[str, tuple[int, ...]]:
    """{name: shape} from a ``name<TAB>[shape][<TAB>dtype]`` list (``#`` lines are comments)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")[:2]
        out[name] = tuple(int(v) for v in shape.strip("[]").split(",") if v.strip())
    return out


# ---------------------------------------------------------------- format


def test_golden_fc6_header():
    data = serialize_record(np.zeros((144, 5), np.float32))
    assert data[:27].hex() == "000000000000000000000000000000000700000008051090011005"
    assert len(data) == 27 + 144 * 5 * 4
    assert len(serialize_record(np.zeros([1], np.float32))) == 28  # learning_rate
    assert len(serialize_record(np.zeros([1], np.int64))) == 32  # @LR_DECAY_COUNTER@


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "float16", "int64", "int32", "uint8", "int8", "bool"]
)
def test_round_trip_dtypes_and_lod(dtype):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(2, 3, 4)) * 50).astype(dtype)
    lod = [[0, 2, 6]] if dtype == "int64" else None
    data = serialize_record(a, lod)
    back, back_lod = parse_record(data)
    assert back.dtype == a.dtype and back.shape == a.shape
    np.testing.assert_array_equal(back, a)
    assert back_lod == (lod or [])
    assert serialize_record(back, back_lod) == data
    big_endian = serialize_record(a.astype(a.dtype.newbyteorder(">")), lod)
    assert big_endian == data  # always written little-endian


def test_lod_layout_and_scalar():
    data = serialize_record(np.array([7], np.int32), [[0, 1]])
    assert struct.unpack_from("<IQQ", data) == (0, 1, 16)  # version, 1 level, 2 offsets * 8 bytes
    assert struct.unpack_from("<QQ", data, 20) == (0, 1)
    np.testing.assert_array_equal(
        parse_record(serialize_record(np.zeros((0, 4), "float32")))[0], np.zeros((0, 4))
    )


def test_bad_records_raise_one_line():
    good = serialize_record(np.arange(12, dtype=np.float32).reshape(3, 4))
    for bad, what in [
        (good[:-1], "truncated"),
        (good[:10], "truncated"),
        (good + b"\0", "bytes after"),
        (b"\1" + good[1:], "version"),
        (b"<html>not a tensor</html>" * 3, "version"),
    ]:
        with pytest.raises(LegacyError, match=what) as err:
            parse_record(bad, "x.tar:top/fc6_w")
        assert "x.tar:top/fc6_w" in str(err.value) and "\n" not in str(err.value)
    bad_dtype = good.replace(b"\x08\x05", b"\x08\x07", 1)  # LOD_TENSOR is not a data type
    with pytest.raises(LegacyError, match="data_type 7"):
        parse_record(bad_dtype)


def test_split_combined_in_sorted_order():
    tensors = {"b_w": np.ones((2, 2), np.float32), "a_b": np.arange(3, dtype=np.int64)}
    blob = b"".join(serialize_record(tensors[n]) for n in sorted(tensors))
    out = split_combined(blob, list(tensors))
    for name, value in tensors.items():
        np.testing.assert_array_equal(out[name], value)
    with pytest.raises(LegacyError):
        split_combined(blob + b"junk", list(tensors))
    assert read_record(blob, 0)[2] == len(serialize_record(tensors["a_b"]))


# ---------------------------------------------------------------- names and shapes

# The v0.1 lists: the variables of genuine v0.1 tarballs, or of the v0.1 test program (what
# save_persistables writes), one per v0.1 config of the seed zoo (header line of each file)
LEGACY_LISTS = sorted(p.stem for p in (FIXTURES / "legacy_v01").glob("*.txt"))
# known, intended differences from the 2.x lists (see LegacyModel.behaviour/notes)
EXPECTED_DIFFS = {
    "retinanet_r50_fpn_1x": {"neck.fpn_6.weight": (256, 2048, 3, 3)},  # fpn_6 on C5: use_c5=True
    "retinanet_r101_fpn_1x": {"neck.fpn_6.weight": (256, 2048, 3, 3)},
}


def test_every_v01_config_of_the_seed_zoo_has_its_list():
    seed = {m.key for m in LEGACY_MODELS.values() if m.arch.family != "backbone"}
    assert set(LEGACY_LISTS) == seed
    assert len(LEGACY_LISTS) == 27


@pytest.mark.parametrize("key", LEGACY_LISTS)
def test_legacy_list_maps_to_the_2x_list(key):
    legacy = read_list(FIXTURES / "legacy_v01" / f"{key}.txt")
    model = LEGACY_MODELS[key]
    detected = LEGACY_MODELS[detect_model(legacy, legacy)]  # 2x lists are detected as the 1x key
    assert (detected.arch, detected.target, detected.num_classes) == (
        model.arch,
        model.target,
        model.num_classes,
    )
    expected = read_list(FIXTURES / "compat" / f"{model.target}.txt")
    expected.update(EXPECTED_DIFFS.get(key, {}))
    if model.num_classes != 80 and model.target == "yolov3_r34":  # the VOC list: 3 * (5 + 20)
        expected = {k: (75, *s[1:]) if "yolo_output" in k else s for k, s in expected.items()}
    assert map_shapes(legacy, key) == expected
    expected_names = {r.legacy for r in model.rules() if r.legacy}
    assert expected_names == set(legacy)
    assert legacy_shapes(key, map_shapes(legacy, key)) == legacy


@pytest.mark.parametrize(
    "key", ["faster_rcnn_r50_fpn_1x", "ssd_mobilenet_v1_voc", "yolov3_darknet"]
)
def test_training_checkpoint_lists_drop_exactly_the_optimizer_state(key):
    """v0.1 tools/train.py checkpoints (Momentum velocities, RMSProp moments, LR variables)."""
    train = read_list(FIXTURES / "legacy_v01" / "train_state" / f"{key}.txt")
    infer = read_list(FIXTURES / "legacy_v01" / f"{key}.txt")
    shapes, report = convert_shapes(train, key)
    assert sorted(report.dropped) == sorted(set(train) - set(infer))
    assert not report.unmapped and not report.missing
    assert shapes == map_shapes(infer, key)


SEED_KEYS = sorted(LEGACY_MODELS)


@pytest.mark.parametrize("key", SEED_KEYS)
def test_every_seed_row_round_trips_names_and_shapes(key):
    """Rows without a legacy list: legacy names derived by the naming rules cover the 2.x list
    exactly, are detected back, and map back to the same shapes."""
    model = LEGACY_MODELS[key]
    target = target_list(model)
    rules = model.rules()
    assert sorted(r.target for r in rules) == sorted(target)
    legacy = legacy_shapes(key, target)
    assert len(legacy) == len({r.legacy for r in rules if r.legacy})
    assert map_shapes(legacy, key) == target
    detected = LEGACY_MODELS[detect_model(legacy, legacy)]
    assert (detected.target, detected.arch) == (model.target, model.arch)


def test_derived_names_follow_the_v01_rules():
    r101 = legacy_shapes(
        "faster_rcnn_r101_fpn_1x", read_list(FIXTURES / "compat" / "faster_rcnn_r101_fpn.txt")
    )
    assert {"res4b22_branch2c_weights", "bn4b22_branch2c_scale", "res4a_branch1_weights"} <= set(
        r101
    )
    assert "bn4b22_branch2c_mean" not in r101  # affine channel: no statistics
    se = legacy_shapes(
        "mask_rcnn_se154_vd_fpn_s1x", read_list(FIXTURES / "compat" / "mask_rcnn_se154_vd_fpn.txt")
    )
    assert se["conv1_3_weights"] == (128, 64, 3, 3) and "conv1_3_bn_scale" in se
    assert se["conv6_36_x2_weights"] == (1024, 16, 3, 3)  # res4b35 branch2b, 64 groups
    assert se["conv5_1_prj_weights"] == (512, 256, 1, 1) and se["fc7_3_exc_offset"] == (2048,)
    assert se["fc4_1_sqz_weights"] == (256, 16)
    x101 = legacy_shapes(
        "faster_rcnn_x101_vd_64x4d_fpn_1x",
        read_list(FIXTURES / "compat" / "faster_rcnn_x101_vd_64x4d_fpn.txt"),
    )
    assert x101["bnv1_1_scale"] == (32,) and x101["res2a_branch2b_weights"] == (256, 4, 3, 3)
    with pytest.raises(LegacyError, match="ResNeXt"):
        detect_model(x101)  # names alone cannot tell ResNeXt-vd from ResNet-vd
    mb = legacy_shapes(
        "yolov3_mobilenet_v1", read_list(FIXTURES / "compat" / "yolov3_mobilenet_v1.txt")
    )
    assert mb["conv5_6_dw_bn_variance"] == (512,) and mb["yolo_block.0.0.0.conv.weights"] == (
        512,
        1024,
        1,
        1,
    )


def test_family_records_are_self_consistent():
    """Each row's family record detects the row's own names, probes its class layer and gives
    its behaviour; behaviour names are the documented ones."""
    for key, model in LEGACY_MODELS.items():
        family = model.family
        names = {r.legacy for r in model.rules() if r.legacy}
        assert family_of(names) is family, key
        assert family.arch(names.__contains__, legacy_shapes(key, target_list(model))) == model.arch
        if family.class_probe is not None:
            assert family.class_probe[0] in names, key
        assert model.behaviour == family.behaviour(model.arch)
        assert set(model.behaviour) <= set(BEHAVIOURS), key
    assert {m.family.name for m in LEGACY_MODELS.values()} == set(FAMILIES)


def target_file(model) -> Path:
    """The 2.x name list a legacy model converts to: PaddleDetection 2.x's (compat/), or ours
    where 2.x has no such model (legacy_v05/: EfficientNet-B0)."""
    compat = FIXTURES / "compat" / f"{model.target}.txt"
    return compat if compat.is_file() else FIXTURES / "legacy_v05" / f"{model.target}.txt"


def target_list(model) -> dict[str, tuple[int, ...]]:
    return read_list(target_file(model))


def test_detect_model_errors():
    with pytest.raises(LegacyError, match="model="):
        detect_model(["fc_0.w_0", "something_else"])
    assert detect_model(["res2a_branch2a_weights", "yolo_output.0.conv.weights"]) == "yolov3_r34"


def test_anchor_permutations():
    # C4 RPN: 2.x anchor (size s, ratio r) at s*3 + r comes from legacy r*5 + s
    assert RPN_C4_PERM[:4] == (0, 5, 10, 1) and sorted(RPN_C4_PERM) == list(range(15))
    # RetinaNet: 2.x ratios [0.5, 1, 2] vs legacy [1, 2, 0.5]; scale s of ratio 0.5 is legacy 2*3+s
    assert RETINA_PERM[:3] == (6, 0, 3) and sorted(RETINA_PERM) == list(range(9))


# ---------------------------------------------------------------- values


def tiny_faster_c4(rng, classes=3):
    """Tiny legacy Faster R-CNN R50-C4 tensors (names of the real list, narrow widths)."""
    names = read_list(FIXTURES / "legacy_v01" / "faster_rcnn_r50_1x.txt")
    out = {}
    for name, shape in names.items():
        if name.startswith("cls_score"):
            shape = (*shape[:-1], classes + 1)
        elif name.startswith("bbox_pred"):
            shape = (*shape[:-1], 4 * (classes + 1))
        elif name.startswith("rpn_"):  # keep the 15 / 60 anchor outputs
            shape = (shape[0], *(min(d, 2) for d in shape[1:]))
        else:
            shape = tuple(min(d, 2) for d in shape)
        out[name] = rng.normal(size=shape).astype(np.float32)
    return out


def test_synthesized_tarball_converts(tmp_path):
    rng = np.random.default_rng(1)
    tensors = tiny_faster_c4(rng)
    extra = {
        "res2a_branch2a_weights_velocity_0": serialize_record(tensors["res2a_branch2a_weights"]),
        "cls_score_w_moment_0": serialize_record(tensors["cls_score_w"]),
        "learning_rate": serialize_record(np.array([0.02], np.float32)),
        "@LR_DECAY_COUNTER@": serialize_record(np.array([90000], np.int64)),
        "my_extra_var": serialize_record(np.ones(3, np.float32)),
        "README": b"not a tensor\n",
    }
    path = str(tmp_path / "faster_rcnn_r50_1x.tar")
    write_legacy_tar(tensors, path, extra=extra)
    assert is_legacy(path)
    state, report = convert(path)
    assert report.model == "faster_rcnn_r50_1x" and report.num_classes == 3
    assert sorted(report.dropped) == sorted(
        [
            "res2a_branch2a_weights_velocity_0",
            "cls_score_w_moment_0",
            "learning_rate",
            "@LR_DECAY_COUNTER@",
        ]
    )
    assert (
        report.unmapped == ["my_extra_var"] and report.skipped == ["README"] and not report.missing
    )
    assert report.behaviour["roi_align_aligned"] is False and "unmapped 1" in report.summary()
    assert sorted(state) == sorted(read_list(FIXTURES / "compat" / "faster_rcnn_r50.txt"))
    # no transform: bit-equal
    for legacy, new in [
        ("res3a_branch2b_weights", "backbone.res3.res3a.branch2b.conv.weight"),
        ("res5c_branch2c_weights", "bbox_head.head.res5.res5c.branch2c.conv.weight"),
        ("conv_rpn_w", "rpn_head.rpn_feat.rpn_conv.weight"),
    ]:
        assert state[new].tobytes() == tensors[legacy].tobytes()
    # affine channel -> BN with mean 0, var 1 - 1e-5
    np.testing.assert_array_equal(
        state["backbone.res2.res2a.branch2a.norm.weight"], tensors["bn2a_branch2a_scale"]
    )
    np.testing.assert_array_equal(
        state["backbone.conv1.conv1.norm.bias"], tensors["bn_conv1_offset"]
    )
    assert (state["backbone.conv1.conv1.norm._mean"] == 0).all()
    assert (state["backbone.conv1.conv1.norm._variance"] == np.float32(1 - 1e-5)).all()
    # class score: background 0 -> last; deltas: background's 4 dropped
    w = tensors["cls_score_w"]
    np.testing.assert_array_equal(
        state["bbox_head.bbox_score.weight"], np.concatenate([w[:, 1:], w[:, :1]], 1)
    )
    np.testing.assert_array_equal(state["bbox_head.bbox_score.bias"][-1], tensors["cls_score_b"][0])
    np.testing.assert_array_equal(
        state["bbox_head.bbox_delta.weight"], tensors["bbox_pred_w"][:, 4:]
    )
    # RPN: 2.x anchor (size 1, ratio 0) is legacy anchor (ratio 0, size 1) = index 1; 4 deltas each
    np.testing.assert_array_equal(
        state["rpn_head.rpn_rois_score.bias"][3], tensors["rpn_cls_logits_b"][1]
    )
    np.testing.assert_array_equal(
        state["rpn_head.rpn_rois_delta.weight"][12:16], tensors["rpn_bbox_pred_w"][4:8]
    )
    # a wrong class count is one line naming the layer
    with pytest.raises(LegacyError, match="hold 3 classes, not num_classes=80"):
        convert(path, num_classes=80)


def test_missing_variable_is_an_error(tmp_path):
    tensors = tiny_faster_c4(np.random.default_rng(2))
    del tensors["res4f_branch2c_weights"]
    path = str(tmp_path / "faster_rcnn_r50_1x.tar")
    write_legacy_tar(tensors, path)
    with pytest.raises(LegacyError, match="missing 1 .res4f_branch2c_weights"):
        convert(path)
    _, report = convert(path, strict=False)
    assert report.missing == ["res4f_branch2c_weights"]


def test_heads_cascade_mask_retina_ssd():
    from ppdet.zoo.legacy import _forward

    rng = np.random.default_rng(3)
    d = rng.normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_array_equal(_forward("agnostic_slot1", d, ()), d[:, 4:8])
    m = rng.normal(size=(4, 2, 1, 1)).astype(np.float32)
    np.testing.assert_array_equal(_forward("drop_bg", m, ()), m[1:])
    conf = np.arange(3 * 4, dtype=np.float32)  # 3 priors x (bg + 3 classes)
    np.testing.assert_array_equal(
        _forward("ssd_conf", conf, (3,)), [1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8]
    )
    cls = np.arange(9 * 2, dtype=np.float32)  # 9 anchors x 2 classes
    out = _forward("anchor_perm", cls, RETINA_PERM)
    np.testing.assert_array_equal(
        out[:2], cls[12:14]
    )  # 2.x anchor 0 (ratio 0.5, scale 0) = legacy 6


def test_ssd_auto_names_are_mapped_by_sorted_index(tmp_path):
    names = read_list(FIXTURES / "legacy_v01" / "ssd_mobilenet_v1_voc.txt")
    shifted = {}
    for name, shape in names.items():  # the program built 5 more conv2d before: conv2d_27 ... 38
        if name.startswith("conv2d_"):
            n, rest = name[len("conv2d_") :].split(".", 1)
            name = f"conv2d_{int(n) + 5}.{rest}"
        shifted[name] = shape
    mapped = map_shapes(shifted)
    assert mapped == read_list(FIXTURES / "compat" / "ssd_mobilenet_v1_voc.txt")


def test_affine_layer_equals_x_times_scale_plus_offset():
    from ppdet.modeling.layers.norms import AffineChannel

    rng = np.random.default_rng(4)
    scale, offset = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    x = rng.normal(size=(2, 6, 3, 5)).astype(np.float32)
    ref = x * scale[None, :, None, None] + offset[None, :, None, None]
    stats = {
        "weight": scale,
        "bias": offset,
        "_mean": np.zeros(6, np.float32),
        "_variance": np.full(6, 1 - 1e-5, np.float32),
    }
    assert np.sqrt(stats["_variance"] + np.float32(1e-5)).tolist() == [1.0] * 6
    for layer in (AffineChannel(6), paddle.nn.BatchNorm2D(6, epsilon=1e-5)):
        layer.set_state_dict({k: paddle.to_tensor(v) for k, v in stats.items()})
        layer.eval()
        got = layer(paddle.to_tensor(x)).numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- end to end with our YOLOv3


def test_yolov3_end_to_end(tmp_path):
    import ppdet
    from ppdet.zoo.weights import load_state_dict

    overrides = ["MobileNet.scale=0.25", "YOLOv3FPN.base_channels=32"]
    cfg = ppdet.load_config(  # the full three-level model the legacy names describe, narrowed
        str(ROOT / "configs" / "yolov3" / "yolov3_mobilenet_v1_270e_coco.yml"), overrides
    )
    paddle.seed(0)
    model = ppdet.build_model(cfg)
    rng = np.random.default_rng(5)
    state = {}
    for name, value in model.state_dict().items():
        array = rng.normal(scale=0.1, size=value.shape).astype(np.float32)
        state[name] = np.abs(array) + 0.5 if name.endswith("_variance") else array
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    batch = {
        "image": paddle.to_tensor(rng.normal(size=(1, 3, 64, 64)).astype(np.float32)),
        "im_shape": paddle.to_tensor([[64.0, 64.0]]),
        "scale_factor": paddle.to_tensor([[1.0, 1.0]]),
    }
    expected = model.predict(batch)
    assert int(expected["bbox_num"].sum()) > 0  # a comparison of real detections

    legacy = to_legacy(state, "yolov3_mobilenet_v1")
    assert "conv2_1_dw_bn_mean" in legacy and "yolo_block.2.tip.bn.var" in legacy
    extra = {f"{n}_velocity_0": serialize_record(a) for n, a in list(legacy.items())[:3]}
    path = str(tmp_path / "yolov3_mobilenet_v1.tar.gz")
    write_legacy_tar(legacy, path, extra=extra)
    converted, report = convert(path)
    assert (
        report.model == "yolov3_mobilenet_v1"
        and report.num_classes == 80
        and len(report.dropped) == 3
    )
    for name, value in state.items():
        assert converted[name].tobytes() == value.tobytes(), name

    paddle.seed(1)
    fresh = ppdet.build_model(cfg)
    load_state_dict(fresh, converted, path, strict=True, quiet=True)
    fresh.eval()
    got = fresh.predict(batch)
    np.testing.assert_array_equal(got["bbox_num"].numpy(), expected["bbox_num"].numpy())
    np.testing.assert_array_equal(got["bbox"].numpy(), expected["bbox"].numpy())


def test_directory_input_and_is_legacy(tmp_path):
    top = tmp_path / "yolov3_darknet"
    top.mkdir()
    (top / "yolo_input.conv.weights").write_bytes(
        serialize_record(np.zeros((2, 3, 3, 3), np.float32))
    )
    assert is_legacy(str(top))
    (tmp_path / "model.pdparams").write_bytes(b"x")
    assert not is_legacy(str(tmp_path))
    with pytest.raises(LegacyError, match="missing"):
        convert(str(top), model="yolov3_darknet")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"garbage" * 100)
    assert not is_legacy(str(bad))
    with pytest.raises(LegacyError, match="bad.tar"):
        convert(str(bad))


# ---------------------------------------------------------------- ImageNet-pretrained backbones

PRETRAINED = [k for k, m in LEGACY_MODELS.items() if m.arch.family == "backbone"]
# image_classification-era classifier names (legacy_format.md); [in_features, 1000] + [1000]
CLASSIFIER = {
    "resnet": ("fc_0.w_0", "fc_0.b_0"),
    "resnet_vd": ("fc_weights", "fc_offset"),
    "resnext": ("fc_weights", "fc_offset"),
    "senet": ("fc6_weights", "fc6_offset"),
    "darknet": ("fc_weights", "fc_offset"),
    "mobilenet_v1": ("fc7_weights", "fc7_offset"),
}
# PaddleClas's EfficientNet-B0 head: 1x1 conv to 1280, BN, pool, fc (tests/fixtures/legacy_v05)
EFFICIENTNET_HEAD = {
    "_conv_head_weights": (1280, 320, 1, 1),
    **{f"_bn1_{s}": (1280,) for s in ("scale", "offset", "mean", "variance")},
    "_fc_weights": (1280, 1000),
    "_fc_offset": (1000,),
}
OPTIMIZER = ["learning_rate", "@LR_DECAY_COUNTER@"]


def pretrained_names(key: str) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """{legacy name: shape} of a v0.1 pretrained tarball derived from the backbone list, with a
    classifier and optimizer state; and the classifier's names."""
    arch = LEGACY_MODELS[key].arch
    legacy = legacy_shapes(key, target_list(LEGACY_MODELS[key]))
    if arch.backbone == "efficientnet":
        head = EFFICIENTNET_HEAD
    else:
        kind = arch.backbone + ("_vd" if arch.backbone == "resnet" and arch.variant == "d" else "")
        weight, bias = CLASSIFIER[kind]
        features = {"darknet": 1024, "mobilenet_v1": 1024}.get(arch.backbone, 2048)
        features = 512 if arch.depth in (18, 34) else features
        head = {weight: (features, 1000), bias: (1000,)}
    legacy.update(head)
    first = next(iter(legacy))
    legacy.update({f"{first}_velocity_0": legacy[first], **{n: (1,) for n in OPTIMIZER}})
    return legacy, tuple(head)


def test_pretrained_entries():
    expected = {f"ResNet{d}_pretrained" for d in (18, 34, 50, 101, 152)}
    expected |= {f"ResNet{d}_vd_pretrained" for d in (18, 34, 50, 101, 152)}
    expected |= {"ResNet50_cos_pretrained", "ResNeXt101_vd_64x4d_pretrained"}
    expected |= {"SENet154_vd_pretrained", "DarkNet53_pretrained", "MobileNetV1_pretrained"}
    expected |= {"EfficientNetB0_pretrained"}
    assert set(PRETRAINED) == expected
    for key in PRETRAINED:
        target = LEGACY_MODELS[key].target
        assert target.startswith("backbone_") and target_file(LEGACY_MODELS[key]).is_file()
        assert not LEGACY_MODELS[key].arch.affine  # real BN statistics
    assert LEGACY_MODELS["ResNet50_cos_pretrained"].target == "backbone_resnet50"
    assert LEGACY_MODELS["ResNeXt101_vd_64x4d_pretrained"].target == "backbone_resnext101_vd_64x4d"


@pytest.mark.parametrize("key", PRETRAINED)
def test_pretrained_names_convert_to_the_backbone_list(key):
    from ppdet.zoo.legacy import convert_shapes

    legacy, classifier = pretrained_names(key)
    target = target_list(LEGACY_MODELS[key])
    shapes, report = convert_shapes(legacy, source=f"/cache/{key}.tar")
    assert shapes == target  # exactly the 2.x names and shapes, prefixed backbone.
    assert report.model == key  # the file name picks among same-architecture keys
    assert report.classifier == sorted(classifier) and not report.unmapped and not report.missing
    optimizer = [n for n in legacy if n.endswith("_velocity_0") or n in OPTIMIZER]
    assert sorted(report.dropped) == sorted(optimizer) and len(optimizer) == 3
    assert not report.synthesized  # _mean/_variance come from the file
    assert len(report.converted) == len(target)
    shown = sorted(classifier)[:6] + (
        [f"... (+{len(classifier) - 6})"] if len(classifier) > 6 else []
    )
    assert f"classifier skipped {len(classifier)} [{', '.join(shown)}]" in report.summary()
    assert "unmapped 0" in report.summary()


@pytest.mark.parametrize("key", PRETRAINED)
def test_detect_model_picks_each_pretrained_backbone(key):
    legacy, _ = pretrained_names(key)
    model = LEGACY_MODELS[key]
    expect = key if key != "ResNet50_pretrained" else "ResNet50_cos_pretrained"  # first R50-b row
    assert detect_model(legacy, legacy) == expect
    if key in ("ResNeXt101_vd_64x4d_pretrained", "ResNet101_vd_pretrained"):
        with pytest.raises(LegacyError, match="ResNeXt101-vd-64x4d pretrained.*shapes="):
            detect_model(legacy)  # the same names: only res2a_branch2b's shape (groups) differs
    else:
        assert LEGACY_MODELS[detect_model(legacy)].arch == model.arch  # names suffice


def test_pretrained_names_follow_image_classification_rules():
    r50, _ = pretrained_names("ResNet50_cos_pretrained")
    assert r50["bn_conv1_mean"] == (64,) and r50["bn2a_branch2a_variance"] == (64,)
    assert r50["res5c_branch2c_weights"] == (2048, 512, 1, 1)
    assert r50["res2a_branch1_weights"] == (256, 64, 1, 1)
    r152, _ = pretrained_names("ResNet152_vd_pretrained")
    assert {"res3h_branch2a_weights", "res4b35_branch2c_weights", "bnv1_1_mean"} <= set(r152)
    r18, _ = pretrained_names("ResNet18_pretrained")
    assert r18["res2a_branch1_weights"] == (64, 64, 1, 1) and "res2a_branch2c_weights" not in r18
    dark, _ = pretrained_names("DarkNet53_pretrained")
    assert dark["stage.4.3.1.bn.var"] == (1024,)
    assert dark["yolo_input.downsample.conv.weights"] == (64, 32, 3, 3)
    mb, _ = pretrained_names("MobileNetV1_pretrained")
    assert mb["conv6_sep_weights"] == (1024, 1024, 1, 1) and mb["conv6_sep_bn_mean"] == (1024,)
    se, _ = pretrained_names("SENet154_vd_pretrained")
    assert se["conv1_3_bn_variance"] == (128,) and se["fc7_3_exc_weights"] == (128, 2048)


def test_pretrained_unknown_extras_are_reported_not_fatal():
    from ppdet.zoo.legacy import convert_shapes

    legacy, _ = pretrained_names("DarkNet53_pretrained")
    legacy["out_weights"] = (1024, 1000)  # a classifier name we do not know: unmapped, a warning
    legacy["fc_0.w_0"] = (1024, 1000)
    shapes, report = convert_shapes(legacy)
    assert report.model == "DarkNet53_pretrained" and report.unmapped == ["out_weights"]
    assert report.classifier == ["fc_0.w_0", "fc_offset", "fc_weights"]
    assert shapes == read_list(FIXTURES / "compat" / "backbone_darknet53.txt")
    del legacy["stage.0.0.0.bn.mean"]
    with pytest.raises(LegacyError, match=r"missing 1 \[stage.0.0.0.bn.mean\]"):
        convert_shapes(legacy)
    # a detector's names are not a backbone: its fc-like names stay unmapped there
    det = legacy_shapes("yolov3_darknet", read_list(FIXTURES / "compat" / "yolov3_darknet53.txt"))
    assert detect_model(det) == "yolov3_darknet"
    assert convert_shapes({**det, "fc_weights": (1024, 1000)})[1].unmapped == ["fc_weights"]


class _Wrapped(paddle.nn.Layer):
    """A backbone whose parameter names carry the ``backbone.`` prefix, as inside a detector."""

    def __init__(self, backbone: paddle.nn.Layer):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


def randomise(model: paddle.nn.Layer, rng, scale: float) -> dict[str, np.ndarray]:
    """Give every parameter and BN statistic of ``model`` random values (variances > 0.5);
    returns them; the model is put in eval mode."""
    state = {}
    for name, value in model.state_dict().items():
        array = rng.normal(scale=scale, size=value.shape).astype(np.float32)
        state[name] = np.abs(array) + 0.5 if name.endswith("_variance") else array
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    return state


def _resnet18():
    from ppdet.modeling.backbones import ResNet

    return _Wrapped(ResNet(depth=18, ch_in=4, variant="b"))


def test_pretrained_resnet18_tarball_loads_into_our_resnet(tmp_path, monkeypatch, capsys):
    from ppdet.modeling.backbones import resnet
    from ppdet.zoo.weights import load_weights

    monkeypatch.setattr(resnet, "STAGE_WIDTHS", (4, 8, 16, 32))  # tiny widths, R18 structure
    paddle.seed(0)
    reference = _resnet18()
    rng = np.random.default_rng(6)
    state = randomise(reference, rng, scale=0.3)
    assert sorted(state) == sorted(
        n for n in read_list(FIXTURES / "compat" / "backbone_resnet18.txt")
    )  # the 2.x names, tiny shapes

    legacy = to_legacy(state, "ResNet18_pretrained")
    variance = state["backbone.conv1.conv1.norm._variance"]
    assert legacy["bn_conv1_variance"].tobytes() == variance.tobytes()  # real BN: no folding
    legacy["fc_0.w_0"] = rng.normal(size=(32, 10)).astype(np.float32)
    legacy["fc_0.b_0"] = np.zeros(10, np.float32)
    extra = {
        "res2a_branch2a_weights_velocity_0": serialize_record(legacy["res2a_branch2a_weights"]),
        "learning_rate": serialize_record(np.array([0.1], np.float32)),
    }
    path = str(tmp_path / "ResNet18_pretrained.tar")
    write_legacy_tar(legacy, path, extra=extra)

    paddle.seed(1)
    fresh = _resnet18()
    x = paddle.to_tensor(rng.normal(size=(2, 3, 32, 32)).astype(np.float32))
    fresh.eval()
    with paddle.no_grad():
        before = fresh(x)[-1].numpy()
    report = load_weights(fresh, path, strict=False)
    out = capsys.readouterr().out
    assert "legacy " in out and "(ResNet18_pretrained -> backbone_resnet18, 1000 classes)" in out
    assert "classifier skipped 2 [fc_0.b_0, fc_0.w_0]" in out and "unmapped 0" in out
    assert "dropped optimizer/LR 2" in out and "missing 0" in out
    assert sorted(report.loaded) == sorted(state) and not report.missing
    assert not report.unused and not report.mismatched
    for name, value in fresh.state_dict().items():
        assert value.numpy().tobytes() == state[name].tobytes(), name
    with paddle.no_grad():
        got, expected = fresh(x), reference(x)
    assert len(got) == 4 and got[-1].shape == [2, 32, 1, 1]
    assert not np.array_equal(before, expected[-1].numpy())  # the load changed the outputs
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.numpy(), e.numpy())


# ---------------------------------------------------------------- EfficientNet-B0 (v0.5 names)


def test_efficientnet_b0_v05_variables_convert_to_our_backbone():
    """The variables v0.5's own EfficientNet('b0') saves (plus PaddleClas's head) become exactly
    our EfficientNet('b0') parameters; the head is skipped as a classifier."""
    from ppdet.modeling.backbones import EfficientNet
    from ppdet.zoo.legacy import convert_shapes

    v05 = read_list(FIXTURES / "legacy_v05" / "EfficientNetB0_pretrained.txt")
    shapes, report = convert_shapes(v05, source="/cache/EfficientNetB0_pretrained.tar")
    assert report.model == "EfficientNetB0_pretrained"
    assert shapes == target_list(LEGACY_MODELS["EfficientNetB0_pretrained"])
    assert report.classifier == sorted(EFFICIENTNET_HEAD)
    assert not report.unmapped and not report.missing and not report.synthesized
    with paddle.LazyGuard():
        ours = EfficientNet("b0").state_dict()
    assert {f"backbone.{k}": tuple(v.shape) for k, v in ours.items()} == shapes


def test_efficientnet_larger_than_b0_is_refused_in_one_line():
    v05 = read_list(FIXTURES / "legacy_v05" / "EfficientNetB0_pretrained.txt")
    b1 = {**v05, "_blocks.16._project_conv_weights": (320, 1152, 1, 1)}
    with pytest.raises(LegacyError, match="larger than B0.*scale b0"):
        detect_model(b1, b1)
    wide = {**v05, "_blocks.15._project_conv_weights": (352, 1152, 1, 1)}
    with pytest.raises(LegacyError, match="larger than B0"):
        detect_model(wide, wide)


def _efficientnet_b0():
    from ppdet.modeling.backbones import EfficientNet

    return _Wrapped(EfficientNet("b0", drop_connect_rate=0.0))


def test_efficientnet_b0_tarball_loads_and_gives_the_same_features(tmp_path, capsys):
    from ppdet.zoo.weights import load_weights

    paddle.seed(0)
    reference = _efficientnet_b0()
    rng = np.random.default_rng(3)
    state = randomise(reference, rng, scale=0.1)
    legacy = to_legacy(state, "EfficientNetB0_pretrained")
    assert (
        legacy["_blocks.3._se_reduce_offset"].tobytes()
        == state["backbone._blocks.3._se_reduce.bias"].tobytes()
    )
    legacy.update({n: np.zeros(s, np.float32) for n, s in EFFICIENTNET_HEAD.items()})
    path = str(tmp_path / "EfficientNetB0_pretrained.tar")
    write_legacy_tar(legacy, path)

    fresh = _efficientnet_b0()
    fresh.eval()
    report = load_weights(fresh, path, strict=False)
    out = capsys.readouterr().out
    assert "(EfficientNetB0_pretrained -> backbone_efficientnet_b0, 1000 classes)" in out
    assert "classifier skipped 7" in out and "unmapped 0" in out and "missing 0" in out
    assert sorted(report.loaded) == sorted(state) and not report.missing
    x = paddle.to_tensor(rng.normal(size=(1, 3, 37, 45)).astype(np.float32))
    with paddle.no_grad():
        got, expected = fresh(x), reference(x)
    assert [tuple(g.shape) for g in got] == [(1, 40, 5, 6), (1, 112, 3, 3), (1, 320, 2, 2)]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.numpy(), e.numpy())
