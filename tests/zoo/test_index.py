"""The zoo index (ppdet/zoo/models.yml), its validation, MODEL_ZOO.md and the configs it names."""

import os
import re

import paddle
import pytest
import yaml

import ppdet
from ppdet.zoo.index import ZooIndexError, load_index, parse_index, render_markdown
from ppdet.zoo.legacy import LEGACY_MODELS, map_shapes
from tests.conftest import ROOT

V01 = "https://paddlemodels.bj.bcebos.com/object_detection/"
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "compat")

# The seed table (PaddleDetection v0.1 MODEL_ZOO.md): URL -> (box AP, mask AP), as published.
SEED = {
    "faster_rcnn_r50_1x": (35.2, None), "faster_rcnn_r50_2x": (37.1, None),
    "mask_rcnn_r50_1x": (36.5, 32.2), "mask_rcnn_r50_2x": (38.2, 33.4),
    "faster_rcnn_r50_vd_1x": (36.4, None), "faster_rcnn_r50_fpn_1x": (37.2, None),
    "faster_rcnn_r50_fpn_2x": (37.7, None), "mask_rcnn_r50_fpn_1x": (37.9, 34.2),
    "cascade_rcnn_r50_fpn_1x": (40.9, None), "faster_rcnn_r50_vd_fpn_2x": (38.9, None),
    "mask_rcnn_r50_vd_fpn_2x": (39.8, 35.4), "faster_rcnn_r101_1x": (38.3, None),
    "faster_rcnn_r101_fpn_1x": (38.7, None), "faster_rcnn_r101_fpn_2x": (39.1, None),
    "mask_rcnn_r101_fpn_1x": (39.5, 35.2), "faster_rcnn_r101_vd_fpn_1x": (40.5, None),
    "faster_rcnn_x101_vd_64x4d_fpn_1x": (42.2, None), "faster_rcnn_se154_vd_fpn_s1x": (42.9, None),
    "mask_rcnn_se154_vd_fpn_s1x": (44.0, 38.7), "retinanet_r50_fpn_1x": (36.0, None),
    "retinanet_r101_fpn_1x": (37.3, None), "ssd_mobilenet_v1_voc": (73.2, None),
    "yolov3_darknet": ({608: 38.9, 416: 37.5, 320: 34.8}, None),
    "yolov3_mobilenet_v1": ({608: 29.3, 416: 29.3, 320: 27.1}, None),
    "yolov3_r34": ({608: 36.2, 416: 34.3, 320: 31.4}, None),
}  # fmt: skip
# PaddleDetection 2.x weights of the same models (configs named in compat/index.json)
V2_NAMES = [
    "faster_rcnn_r50_1x_coco", "faster_rcnn_r50_vd_1x_coco", "faster_rcnn_r50_fpn_1x_coco",
    "faster_rcnn_r50_vd_fpn_1x_coco", "faster_rcnn_r101_1x_coco", "faster_rcnn_r101_fpn_2x_coco",
    "faster_rcnn_r101_vd_fpn_1x_coco", "faster_rcnn_x101_vd_64x4d_fpn_1x_coco",
    "mask_rcnn_r50_1x_coco", "mask_rcnn_r50_fpn_1x_coco", "mask_rcnn_r50_vd_fpn_2x_coco",
    "mask_rcnn_r101_fpn_1x_coco", "mask_rcnn_x101_vd_64x4d_fpn_1x_coco",
    "cascade_rcnn_r50_fpn_1x_coco", "cascade_mask_rcnn_r50_fpn_1x_coco",
    "retinanet_r50_fpn_1x_coco", "retinanet_r101_fpn_2x_coco", "yolov3_darknet53_270e_coco",
    "yolov3_mobilenet_v1_270e_coco", "yolov3_r34_270e_coco", "yolov3_mobilenet_v3_large_270e_coco",
    "ssd_mobilenet_v1_300_120e_voc", "ssd_vgg16_300_240e_voc",
]  # fmt: skip
PRETRAINED = [
    "ResNet50_cos_pretrained", "ResNet50_vd_pretrained", "ResNet101_pretrained",
    "ResNet101_vd_pretrained", "ResNeXt101_vd_64x4d_pretrained", "ResNet34_pretrained",
    "DarkNet53_pretrained", "MobileNetV1_pretrained", "MobileNetV3_large_x1_0_ssld_pretrained",
    "MobileNetV3_small_x1_0_ssld_pretrained", "ResNet50_vd_ssld_pretrained", "VGG16_caffe_pretrained",
]  # fmt: skip


@pytest.fixture(scope="module")
def index():
    return load_index()


def test_every_seed_row_is_a_legacy_entry_with_its_url_and_ap(index):
    for key, (box, mask) in SEED.items():
        entry = index.by_url(V01 + key + ".tar")
        assert entry is not None, key
        assert entry.format == "legacy_v01" and entry.dataset == ("voc" if "voc" in key else "coco")
        assert entry.metrics.get("box_ap") == box and entry.metrics.get("mask_ap") == mask, key
        assert entry.sha256 is None and entry.md5 is None  # unknown: never invented
    # the R101-vd-FPN 2x row points at the R101-FPN 2x file, as the seed table says
    vd = index.get("faster_rcnn_r101_vd_fpn_2x")
    assert vd.urls == (V01 + "faster_rcnn_r101_fpn_2x.tar",) and vd.metrics == {"box_ap": 40.6}
    assert "faster_rcnn_r101_fpn_2x.tar" in vd.notes
    assert index.by_url(vd.urls[0]).name == "faster_rcnn_r101_fpn_2x"  # first entry wins
    backbone = index.get("ResNet50_cos_pretrained_v01")
    assert backbone.urls == (
        "https://paddle-imagenet-models-name.bj.bcebos.com/ResNet50_cos_pretrained.tar",
    )


def test_legacy_keys_name_converter_models(index):
    for e in index:
        if e.format == "legacy_v01":
            assert e.legacy in LEGACY_MODELS, e.name
            if e.config:
                assert (
                    LEGACY_MODELS[e.legacy].num_classes
                    == ppdet.load_config(os.path.join(ROOT, e.config))["num_classes"]
                )


def test_2x_weights_and_pretrained_backbones_are_listed(index):
    for name in V2_NAMES:
        e = index.require(name)
        assert e.format == "pdparams" and e.urls == (
            f"https://paddledet.bj.bcebos.com/models/{name}.pdparams",
        )
        assert e.config or e.upstream_config.endswith(f"/{name}.yml")
    for name in PRETRAINED:
        e = index.require(name)
        assert e.family == "backbone" and e.architecture is None
        assert e.urls == (f"https://paddledet.bj.bcebos.com/models/pretrained/{name}.pdparams",)
    assert index.get("yolov3_darknet53_270e_coco").metrics == {
        "box_ap": {608: 39.1, 416: 37.7, 320: 34.8}
    }


def test_names_unique_and_planned_entries_have_no_config(index):
    assert len(set(index.names())) == len(index) > 60
    for e in index:
        assert (e.config is None) == (e.planned or e.family == "backbone"), e.name


def test_model_zoo_md_is_generated_from_the_index(index, tmp_path):
    with open(os.path.join(ROOT, "MODEL_ZOO.md"), encoding="utf-8") as f:
        assert f.read() == render_markdown(index), (
            "MODEL_ZOO.md is stale: python tools/gen_model_zoo.py"
        )
    import sys

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        from gen_model_zoo import main
    finally:
        sys.path.pop(0)
    page = tmp_path / "MODEL_ZOO.md"
    page.write_text("old\n")
    assert main(["--output", str(page), "--check"]) == 1
    assert main(["--output", str(page)]) == 0 and main(["--output", str(page), "--check"]) == 0
    text = page.read_text()
    assert (
        "| `yolov3_darknet53_270e_coco` | DarkNet53 | 270e | coco | 39.1 / 37.7 / 34.8 (608/416/320) |"
        in text
    )
    assert (
        "[configs/yolov3/yolov3_r34_270e_coco.yml](configs/yolov3/yolov3_r34_270e_coco.yml)" in text
    )


def compat_list(config: str) -> str:
    """The PaddleDetection 2.x name list of a zoo config (tests/fixtures/compat/<name>.txt)."""
    stem = os.path.basename(config)[: -len(".yml")]
    stem = re.sub(r"_\d{3}_\d+e_voc$", "_voc", stem)  # ssd_vgg16_300_240e_voc -> ssd_vgg16_voc
    return re.sub(r"_(\d+e|[12]x)_(coco|voc)$", "", stem)  # faster_rcnn_r50_fpn_1x_coco -> ..._fpn


def legacy_list(key: str) -> dict[str, list[int]]:
    """The 2.x names/shapes of v0.1 checkpoint ``key``: its v0.1 list (made by v0.1 itself,
    tests/fixtures/legacy_v01) converted."""
    path = os.path.join(os.path.dirname(FIXTURES), "legacy_v01", f"{key}.txt")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    shapes = {n: tuple(yaml.safe_load(s)) for n, s, *_ in rows}
    return {k: list(v) for k, v in map_shapes(shapes, key).items()}


def test_every_config_loads_builds_and_has_exactly_the_paddledetection_parameters(index):
    by_config = {}
    for e in index:
        if e.config:
            by_config.setdefault(e.config, []).append(e)
    assert len(by_config) >= 3
    for config, entries in by_config.items():  # each distinct config built once
        path = os.path.join(ROOT, config)
        assert os.path.isfile(path), config
        cfg = ppdet.load_config(path)
        with paddle.LazyGuard():  # shapes without allocating R101/X101 weights
            model = ppdet.build_model(cfg)
        for e in entries:
            assert e.architecture == cfg["architecture"], e.name
            assert e.backbone == cfg[cfg["architecture"]]["backbone"], e.name
        if all(e.legacy for e in entries):  # a v0.1 config: the converted genuine v0.1 list
            expected = legacy_list(entries[0].legacy)
        else:
            fixture = os.path.join(FIXTURES, f"{compat_list(config)}.txt")
            assert os.path.isfile(fixture), f"{config}: no name list {fixture}"
            with open(fixture, encoding="utf-8") as f:
                expected = {
                    n: yaml.safe_load(s)
                    for n, s, _ in (line.rstrip("\n").split("\t") for line in f)
                }
        assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected, config
        del model


def _entry(**kw):
    e = {"name": "m", "family": "yolov3", "architecture": "YOLOv3", "backbone": "DarkNet",
         "config": "configs/x.yml", "schedule": "270e", "dataset": "coco", "metrics": {"box_ap": 30.0},
         "format": "pdparams", "urls": ["https://x/m.pdparams"], "sha256": None, "md5": None,
         "size": None, "source": "s", "licence": "Apache-2.0"}  # fmt: skip
    e.update(kw)
    return e


@pytest.mark.parametrize("change, message", [
    ({"shcedule": "1x"}, "models[0] (m).shcedule: unknown field; did you mean 'schedule'?"),
    ({"sha256": "abc"}, "models[0] (m).sha256: must be 64 lowercase hex digits or null"),
    ({"format": "ckpt"}, "models[0] (m).format: 'ckpt' is not one of pdparams, legacy_v01, ppdet_tarball"),
    ({"format": "legacy_v01"}, "models[0] (m).legacy: required for format legacy_v01 and only there"),
    ({"config": None}, "models[0] (m).config: null needs 'status: planned'"),
    ({"urls": ["ftp://x/m"]}, "models[0] (m).urls: 'ftp://x/m' is not an http(s) URL"),
    ({"metrics": {"box_ap": 0.39e3}}, "models[0] (m).metrics.box_ap: AP must be a number in percent"),
    ({"metrics": {"box_ap": {"608": 30.0}}}, "models[0] (m).metrics.box_ap.608: per-size AP needs an input size"),
    ({"schedule": "12 epochs"}, "models[0] (m).schedule: '12 epochs' must look like 1x, 1.44x or 270e"),
    ({"size": -1}, "models[0] (m).size: must be a byte count or null"),
])  # fmt: skip
def test_validation_errors_are_one_line(change, message):
    with pytest.raises(ZooIndexError) as info:
        parse_index({"version": 1, "models": [_entry(**change)]}, "idx.yml")
    text = str(info.value)
    assert text.startswith("idx.yml: ") and message in text and "\n" not in text


def test_duplicates_lookup_and_suggestions(tmp_path):
    with pytest.raises(ZooIndexError, match=r"models\[1\] \(m\)\.name: duplicate name 'm'"):
        parse_index({"models": [_entry(), _entry()]}, "idx.yml")
    with pytest.raises(ZooIndexError, match="differs from a for the same URL"):
        parse_index(
            {"models": [_entry(name="a", sha256="0" * 64), _entry(name="b", sha256="1" * 64)]}, "i"
        )
    path = tmp_path / "idx.yml"
    path.write_text(
        yaml.safe_dump(
            {"models": [_entry(name="yolov3_tiny"), _entry(name="ssd", urls=["https://y/s"])]}
        )
    )
    index = load_index(str(path))
    assert (
        index.get("ssd").url == "https://y/s"
        and index.by_url("https://x/m.pdparams").name == "yolov3_tiny"
    )
    assert index.by_url("https://x/other") is None
    assert index.suggest("yolov3_tin") == ["yolov3_tiny"]
    with pytest.raises(
        ZooIndexError, match=r"'yolo_tiny' is not in the model zoo; did you mean yolov3_tiny\?"
    ):
        index.require("yolo_tiny")
    path.write_text("models: [\n")
    with pytest.raises(ZooIndexError, match="idx.yml: invalid YAML"):
        load_index(str(path))
