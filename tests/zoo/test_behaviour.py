"""The index never lies: planned entries and v0.1 weights whose record needs fluid-era
behaviour the model lacks are refused by strict loads and loaded with a warning by lenient ones."""

import logging
import os

import numpy as np
import paddle
import pytest
import yaml

import ppdet
from ppdet.checkpoint import WeightsError
from ppdet.zoo.index import DEFAULT_INDEX
from ppdet.zoo.legacy import LEGACY_MODELS, write_legacy_tar
from ppdet.zoo.weights import load_weights
from tests.conftest import ROOT
from tests.zoo.http_server import Serve

KEY = "faster_rcnn_r50_1x"
NEEDS = dict(LEGACY_MODELS[KEY].behaviour)  # read from the record, whatever it holds
LEGACY_LIST = os.path.join(ROOT, "tests", "fixtures", "legacy_v01", f"{KEY}.txt")


class Part(paddle.nn.Layer):
    def __init__(self, conventions=None):
        super().__init__()
        self.fc = paddle.nn.Linear(2, 2)
        if conventions is not None:
            self.conventions = conventions


class TinyRCNN(paddle.nn.Layer):
    """Two sublayers that may declare conventions (split like an RPN and an RoI head)."""

    def __init__(self, conventions=None):
        super().__init__()
        conventions = dict(conventions or {})
        keys = sorted(conventions)
        self.rpn = Part({k: conventions[k] for k in keys[::2]} or None)
        self.roi = Part({k: conventions[k] for k in keys[1::2]} or None)


@pytest.fixture(scope="module")
def legacy_tar(tmp_path_factory):
    """A v0.1-format faster_rcnn_r50_1x tarball with the real variable names, narrow shapes."""
    rng = np.random.default_rng(0)
    tensors = {}
    with open(LEGACY_LIST) as f:
        for line in f:
            name, shape = line.split("\t")[:2]
            shape = [int(v) for v in shape.strip("[]\n").split(",") if v.strip()]
            if not name.startswith(("cls_score", "bbox_pred", "rpn_")):
                shape = [min(d, 2) for d in shape]
            tensors[name] = rng.normal(size=shape).astype(np.float32)
    path = str(tmp_path_factory.mktemp("legacy") / f"{KEY}.tar")
    write_legacy_tar(tensors, path)
    return path


def index_with(tmp_path, **changes) -> str:
    """The package index with the entry ``KEY`` changed (e.g. live with a config)."""
    with open(DEFAULT_INDEX, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    for entry in data["models"]:
        if entry["name"] == KEY:
            entry.update(changes)
            for field, value in list(entry.items()):
                if value is None and field in ("status", "config"):
                    del entry[field]
    path = tmp_path / "models.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_the_record_needs_behaviour():  # the tests below mean something only then
    assert NEEDS and LEGACY_MODELS[KEY].behaviour == NEEDS


def test_strict_load_of_v01_weights_names_the_missing_behaviour_and_the_config(
    legacy_tar, tmp_path
):
    planned = index_with(tmp_path, status="planned", config=None)
    with pytest.raises(WeightsError) as err:
        load_weights(TinyRCNN(), legacy_tar, strict=True, index=planned)
    text = str(err.value)
    assert "\n" not in text and f"legacy v0.1 weights {KEY} need fluid-era behaviour" in text
    assert all(f"{k}={v!r} (not declared)" in text for k, v in NEEDS.items())
    assert f"no config of this version provides it yet (zoo entry {KEY} is planned)" in text
    with pytest.raises(WeightsError) as err:  # the package index: the entry is live
        load_weights(TinyRCNN(), legacy_tar, strict=True)
    assert f"use the config configs/faster_rcnn_r50_1x.yml (zoo entry {KEY})" in str(err.value)

    live = index_with(tmp_path, status=None, config="configs/faster_rcnn_r50_1x.yml")
    key, value = sorted(NEEDS.items())[0]
    wrong = {**NEEDS, key: "something else"}
    with pytest.raises(WeightsError) as err:
        load_weights(TinyRCNN(wrong), legacy_tar, strict=True, index=live)
    text = str(err.value)
    assert f"{key}={value!r} (model: 'something else')" in text
    assert sum(k in text for k in NEEDS) == 1  # only the one that differs
    assert f"use the config configs/faster_rcnn_r50_1x.yml (zoo entry {KEY})" in text


def test_a_model_with_the_behaviour_passes_the_check(legacy_tar, caplog):
    model = TinyRCNN(NEEDS)
    with caplog.at_level(logging.WARNING):
        report = load_weights(model, legacy_tar, strict=False)
    assert not caplog.records and report.loaded == []
    # strict: the check passes; what stops it is that this toy has none of the parameters
    with pytest.raises(WeightsError, match="does not fit this model"):
        load_weights(model, legacy_tar, strict=True)


def test_lenient_load_warns_with_the_same_reason(legacy_tar, caplog):
    with caplog.at_level(logging.WARNING, logger="ppdet.zoo.behaviour"):
        report = load_weights(TinyRCNN(), legacy_tar, strict=False)
    assert report is not None and len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert f"legacy v0.1 weights {KEY} need fluid-era behaviour" in text
    assert "loading it anyway" in text


def test_a_planned_entry_is_refused_before_anything_is_downloaded(
    legacy_tar, tmp_path, http_server, caplog
):
    data = open(legacy_tar, "rb").read()
    url = http_server.route(f"/zoo/{KEY}.tar", Serve(data))
    index = index_with(tmp_path, urls=[url], status="planned", config=None)
    with pytest.raises(WeightsError) as err:
        load_weights(TinyRCNN(), KEY, strict=True, index=index)
    text = str(err.value)
    assert text.startswith(f"zoo entry {KEY} is planned") and "\n" not in text
    assert all(k in text for k in NEEDS) and "as pretrain_weights" in text
    with pytest.raises(WeightsError, match="is planned"):
        load_weights(TinyRCNN(), url, strict=True, index=index)  # by URL too
    with pytest.raises(WeightsError, match="no config of this version is verified"):
        load_weights(TinyRCNN(NEEDS), KEY, strict=True, index=index)
    assert http_server.count() == 0

    with caplog.at_level(logging.WARNING, logger="ppdet.zoo.behaviour"):
        load_weights(TinyRCNN(), KEY, strict=False, index=index)
    assert http_server.count() == 1 and len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"zoo entry {KEY} is planned")


def test_a_live_legacy_entry_still_checks_the_model(legacy_tar, tmp_path, http_server):
    url = http_server.route(f"/zoo/{KEY}.tar", Serve(open(legacy_tar, "rb").read()))
    index = index_with(tmp_path, status=None, config="configs/faster_rcnn_r50_1x.yml", urls=[url])
    with pytest.raises(WeightsError, match="use the config configs/faster_rcnn_r50_1x.yml"):
        load_weights(TinyRCNN(), KEY, strict=True, index=index)
    with pytest.raises(WeightsError, match="does not fit this model"):  # behaviour fine
        load_weights(TinyRCNN(NEEDS), KEY, strict=True, index=index)


def test_conflicting_declarations_are_a_one_line_weights_error(legacy_tar):
    model = TinyRCNN()
    model.rpn.conventions = {"box_coder_plus_one": True}
    model.roi.conventions = {"box_coder_plus_one": False}
    with pytest.raises(WeightsError, match="cannot tell what the model runs: conflicting"):
        load_weights(model, legacy_tar, strict=True)


def test_a_planned_entry_of_an_unimplemented_architecture(tmp_path):
    entry = {
        "name": "cascade_mask_x",
        "family": "cascade_rcnn",
        "architecture": "CascadeRCNN",
        "status": "planned",
        "upstream_config": "configs/cascade_rcnn/cascade_mask_rcnn_r50_fpn_1x_coco.yml",
        "dataset": "coco",
        "format": "pdparams",
        "urls": ["http://127.0.0.1:9/never.pdparams"],
        "source": "test",
        "licence": "Apache-2.0",
    }
    index = tmp_path / "i.yml"
    index.write_text(yaml.safe_dump({"version": 1, "models": [entry]}))
    with pytest.raises(
        WeightsError, match="its architecture is not implemented yet .*cascade_mask"
    ):
        load_weights(TinyRCNN(), "cascade_mask_x", strict=True, index=str(index))


def test_real_configs_and_the_real_index(legacy_tar):
    """The 2.x config of the seed row's architecture is refused its v0.1 weights, naming the
    v0.1 config; that config runs every behaviour they need."""
    from ppdet.zoo.behaviour import check_legacy

    def build(*parts):
        with paddle.LazyGuard():
            return ppdet.build_model(ppdet.load_config(os.path.join(ROOT, "configs", *parts)))

    with pytest.raises(WeightsError) as err:
        check_legacy(build("faster_rcnn", "faster_rcnn_r50_1x_coco.yml"), KEY, "x", strict=True)
    text = str(err.value)
    assert "fluid-era behaviour" in text and "use the config configs/faster_rcnn_r50_1x.yml" in text
    check_legacy(build("faster_rcnn_r50_1x.yml"), KEY, "x", strict=True)  # nothing missing


def test_a_local_file_named_like_a_planned_entry_is_not_looked_up(tmp_path, monkeypatch):
    model = TinyRCNN()
    paddle.save(model.state_dict(), str(tmp_path / f"{KEY}.pdparams"))
    monkeypatch.chdir(tmp_path)
    report = load_weights(model, KEY, strict=True)  # the prefix of the local file
    assert len(report.loaded) == 4


def test_every_live_legacy_entry_has_a_config_that_runs_its_behaviour():
    """A live v0.1 row's config declares every fluid-era behaviour its weights need."""
    from ppdet.modeling.conventions import missing_conventions, model_conventions
    from ppdet.zoo.index import load_index

    built = {}
    for e in load_index():
        if e.format != "legacy_v01" or e.planned or not e.config:
            continue
        if e.config not in built:
            with paddle.LazyGuard():
                model = ppdet.build_model(ppdet.load_config(os.path.join(ROOT, e.config)))
            built[e.config] = model_conventions(model)
        needs = LEGACY_MODELS[e.legacy].behaviour
        assert missing_conventions(needs, built[e.config]) == [], e.name
    assert len(built) >= 10
