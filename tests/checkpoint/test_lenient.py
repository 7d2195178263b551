"""Fitting foreign checkpoints (ImageNet backbones, other detectors) onto a model by name."""

import numpy as np
import paddle
import pytest

from ppdet.checkpoint import (
    WeightsError,
    describe_resnet,
    fit_state_dict,
    load_state_dict,
    match_names,
    read_state_dict,
)


def resnet_names(blocks, bottleneck=True, stem="b", prefix="backbone."):
    names = (
        [f"{prefix}conv1.conv1.conv.weight"]
        if stem == "b"
        else [f"{prefix}conv1.conv1_{i}.conv.weight" for i in (1, 2, 3)]
    )
    branches = ("2a", "2b", "2c") if bottleneck else ("2a", "2b")
    for stage, count in zip("2345", blocks):
        for i in range(count):
            block = "abcdefghij"[i] if count <= 10 else ("a" if i == 0 else f"b{i}")
            names += [
                f"{prefix}res{stage}.res{stage}{block}.branch{b}.conv.weight" for b in branches
            ]
    return names


def test_suffix_rule_prefers_the_longest_name_and_maps_res5_into_the_head():
    model = [
        "backbone.res2.res2a.branch2a.conv.weight",
        "bbox_head.head.res5.res5a.branch2a.conv.weight",
    ]
    file = [
        "res2.res2a.branch2a.conv.weight",  # bare (PaddleClas style)
        "backbone.res2.res2a.branch2a.conv.weight",  # full name: longer, wins
        "backbone.res5.res5a.branch2a.conv.weight",  # C4: res5 goes to the box head
    ]
    assert match_names(model, file) == {
        model[0]: "backbone.res2.res2a.branch2a.conv.weight",
        model[1]: "backbone.res5.res5a.branch2a.conv.weight",
    }


def test_describe_resnet_depth_and_variant():
    assert describe_resnet(resnet_names((3, 4, 6, 3))) == "ResNet-50 variant b (7x7 stem)"
    assert (
        describe_resnet(resnet_names((3, 4, 23, 3), stem="d"))
        == "ResNet-101 variant d (deep 3x3 stem)"
    )
    assert (
        describe_resnet(resnet_names((3, 4, 6, 3), bottleneck=False))
        == "ResNet-34 variant b (7x7 stem)"
    )
    assert (
        describe_resnet(resnet_names((2, 2, 2, 2), False, prefix=""))
        == "ResNet-18 variant b (7x7 stem)"
    )
    assert describe_resnet(["backbone.stage.0.conv.weight"]) is None


def _tensors(names, shape=(2,)):
    return {n: paddle.zeros(shape) for n in names}


def test_a_checkpoint_of_another_depth_or_variant_fails_naming_both():
    model = _tensors(resnet_names((3, 4, 6, 3), stem="d"))
    wrong_depth = {n: np.ones(2, "float32") for n in resnet_names((3, 4, 23, 3), stem="d")}
    with pytest.raises(
        WeightsError, match="checkpoint is ResNet-101 variant d .*model is ResNet-50 variant d"
    ):
        fit_state_dict(model, wrong_depth, "r101.pdparams")
    wrong_variant = {n: np.ones(2, "float32") for n in resnet_names((3, 4, 6, 3), stem="b")}
    with pytest.raises(
        WeightsError, match="checkpoint is ResNet-50 variant b .*model is ResNet-50 variant d"
    ):
        fit_state_dict(model, wrong_variant, "r50.pdparams")
    bottleneck_vs_basic = {
        n: np.ones(2, "float32") for n in resnet_names((3, 4, 6, 3), bottleneck=False)
    }
    with pytest.raises(WeightsError, match="checkpoint is ResNet-34 .*model is ResNet-50"):
        fit_state_dict(model, bottleneck_vs_basic, "r34.pdparams")


def test_width_mismatch_fails_with_counts():
    model = _tensors(["backbone.a.weight", "backbone.b.weight", "neck.c.weight"], shape=(4,))
    state = {n: np.ones(8, "float32") for n in model}
    with pytest.raises(WeightsError, match="only 0 of the model's 2 backbone parameters fit"):
        fit_state_dict(model, state, "wide.pdparams")


def test_imagenet_classifier_is_skipped_and_reported(capsys):
    layer = paddle.nn.Layer()
    layer.backbone = paddle.nn.Linear(3, 4)
    layer.head = paddle.nn.Linear(4, 2)
    state = {
        "backbone.weight": np.full((3, 4), 2, "float32"),
        "backbone.bias": np.full((4,), 3, "float32"),
        "fc.weight": np.zeros((4, 1000), "float32"),
        "fc.bias": np.zeros((1000,), "float32"),
        "something.else": np.zeros((1,), "float32"),
    }
    report = load_state_dict(layer, state, "ImageNet.pdparams", strict=False)
    assert report.skipped == ["fc.weight", "fc.bias"] and report.unused == ["something.else"]
    assert sorted(report.missing) == ["head.bias", "head.weight"]
    np.testing.assert_array_equal(layer.backbone.weight.numpy(), state["backbone.weight"])
    out = capsys.readouterr().out
    assert "unused 1 [something.else], classifier skipped 2 [fc.weight, fc.bias]" in out


def test_one_bare_entry_filling_two_parameters_is_an_error():
    model = _tensors(["neck.a.conv.weight", "neck.b.conv.weight"])
    with pytest.raises(WeightsError, match="'conv.weight' fits 2 parameters"):
        fit_state_dict(model, {"conv.weight": np.ones(2, "float32")}, "bare.pdparams")


def test_c4_model_with_res5_in_the_head_accepts_the_imagenet_resnet():
    full = resnet_names((3, 4, 6, 3))
    model_names = [n for n in full if ".res5." not in n]
    model_names += [n.replace("backbone.", "bbox_head.head.") for n in full if ".res5." in n]
    report, to_set = fit_state_dict(
        _tensors(model_names), {n: np.ones(2, "float32") for n in full}, "r50"
    )
    assert not report.missing and not report.unused and len(to_set) == len(full)


def test_real_resnets_imagenet_file_with_classifier_and_a_wrong_depth(tmp_path, capsys):
    from ppdet.modeling.backbones import ResNet

    def load_weights(model, path, strict):
        return load_state_dict(model, read_state_dict(path), path, strict=strict)

    def detector(depth, variant="b"):
        model = paddle.nn.Layer()
        model.backbone = ResNet(depth=depth, variant=variant, return_idx=[3], freeze_norm=False)
        return model

    paddle.seed(1)
    source = detector(18)
    state = {k: v.numpy() for k, v in source.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = (
        np.zeros((512, 1000), "float32"),
        np.zeros((1000,), "float32"),
    )
    path = str(tmp_path / "ResNet18_pretrained.pdparams")
    paddle.save(state, path)

    target = detector(18)
    report = load_weights(target, path, strict=False)
    assert (
        not report.missing and not report.mismatched and report.skipped == ["fc.weight", "fc.bias"]
    )
    x = paddle.randn([1, 3, 64, 64])
    source.eval(), target.eval()
    np.testing.assert_array_equal(source.backbone(x)[0].numpy(), target.backbone(x)[0].numpy())
    with pytest.raises(
        WeightsError, match="checkpoint is ResNet-18 variant b .*model is ResNet-34 variant b"
    ):
        load_weights(detector(34), path, strict=False)
    with pytest.raises(
        WeightsError, match="checkpoint is ResNet-18 variant b .*model is ResNet-18 variant d"
    ):
        load_weights(detector(18, "d"), path, strict=False)
