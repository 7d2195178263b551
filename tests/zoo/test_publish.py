"""Publishing a trained model: tarball contents, index + MODEL_ZOO.md update, and the round trip
publish -> serve over HTTP -> fetch into a fresh PPDET_HOME -> identical detections."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import paddle
import pytest
import safetensors.numpy
import yaml

import ppdet
from ppdet.checkpoint import load_state_dict, read_state_dict
from ppdet.config import dump_config
from ppdet.data.loader import build_dataset
from ppdet.engine.checkpoint import save_weights
from ppdet.engine.predictor import Predictor
from ppdet.zoo.fetch import fetch
from ppdet.zoo.index import DEFAULT_INDEX, load_index, render_markdown
from ppdet.zoo.publish import PublishError, publish
from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides
from tests.zoo.http_server import Serve

MEMBERS = ["config.yml", "label_list.txt", "meta.json", "model.pdparams", "model.safetensors"]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def trained(tiny_demo_data, tmp_path):
    """A tiny demo YOLOv3 with random weights saved as <tmp>/run/model_final.pdparams."""
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    cfg = ppdet.load_config(DEMO_CONFIG, opts)
    paddle.seed(1)
    model = ppdet.build_model(cfg)
    prefix = str(tmp_path / "run" / "model_final")
    save_weights(model, prefix)
    index = tmp_path / "models.yml"
    shutil.copyfile(DEFAULT_INDEX, index)
    return cfg, opts, model, prefix, str(index)


def test_publish_serve_fetch_gives_identical_detections(
    trained, tiny_demo_data, tmp_path, http_server
):
    cfg, opts, model, prefix, index = trained
    record = {
        "weights": prefix + ".pdparams",
        "iteration": 7,
        "metrics": {"AP": 0.1234, "AP50": 0.3},
    }
    (tmp_path / "run" / "eval_metrics.json").write_text(json.dumps(record))
    page = tmp_path / "MODEL_ZOO.md"
    before = load_index(index)

    tarball = publish(
        DEMO_CONFIG,
        prefix,
        str(tmp_path / "dist"),
        name="tiny_yolo",
        url_base=http_server.url("/zoo/"),
        index_path=index,
        model_zoo_md=str(page),
        overrides=opts,
    )
    assert tarball == str(tmp_path / "dist" / "tiny_yolo.tar.gz")
    assert sorted(os.listdir(tmp_path / "dist")) == ["tiny_yolo.tar.gz"]  # no staging left over
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == ["tiny_yolo"] + [f"tiny_yolo/{m}" for m in MEMBERS]

    url = http_server.url("/zoo/tiny_yolo.tar.gz")
    after = load_index(index)
    entry = after.get("tiny_yolo")
    assert entry.format == "ppdet_tarball" and entry.urls == (url,)
    assert entry.sha256 == sha(tarball) and entry.size == os.path.getsize(tarball)
    assert entry.metrics == {"box_ap": 12.3} and entry.schedule == "2e" and entry.dataset == "coco"
    assert (entry.architecture, entry.backbone) == ("YOLOv3", "MobileNet")
    assert entry.config == "configs/yolov3/yolov3_mobilenet_v1_demo.yml"
    assert after.names() == before.names() + ["tiny_yolo"]
    assert all(after.get(n) == before.get(n) for n in before.names())
    assert page.read_text() == render_markdown(after) and "`tiny_yolo`" in page.read_text()

    # serve it; fetch by URL (the index checksum is checked) into the fresh PPDET_HOME
    http_server.route("/zoo/tiny_yolo.tar.gz", Serve(read_bytes(tarball)))
    path = fetch(url, index=index, progress=False)
    assert path.endswith(os.path.join("tiny_yolo", "model.safetensors"))
    assert fetch("tiny_yolo", index=index, progress=False) == path
    assert http_server.count("/zoo/tiny_yolo.tar.gz") == 1
    folder = os.path.dirname(path)

    meta = json.loads(read_bytes(os.path.join(folder, "meta.json")))
    assert meta["name"] == "tiny_yolo" and meta["metrics"] == {"AP": 0.1234, "AP50": 0.3}
    assert meta["iteration"] == 7 and meta["architecture"] == "YOLOv3" and meta["num_classes"] == 4
    for member in MEMBERS[:2] + MEMBERS[3:]:
        assert meta["files"][member]["sha256"] == sha(os.path.join(folder, member)), member
    labels = read_bytes(os.path.join(folder, "label_list.txt")).decode().splitlines()
    assert labels == build_dataset(cfg, "eval").label_list and len(labels) == 4
    with open(os.path.join(folder, "config.yml")) as f:
        assert yaml.safe_load(f) == yaml.safe_load(dump_config(cfg))

    state = safetensors.numpy.load_file(path)
    pd_state = read_state_dict(os.path.join(folder, "model.pdparams"))
    assert sorted(state) == sorted(pd_state) == sorted(model.state_dict())
    assert all(np.array_equal(state[k], pd_state[k]) for k in state)

    paddle.seed(2)
    fresh = ppdet.build_model(cfg)
    name = next(k for k, v in state.items() if v.ndim == 4)  # a conv kernel: random at init
    assert not np.array_equal(fresh.state_dict()[name].numpy(), model.state_dict()[name].numpy())
    load_state_dict(fresh, state, path, strict=True)
    model.eval()
    fresh.eval()
    rng = np.random.default_rng(0)
    batch = {
        "image": paddle.to_tensor(rng.normal(size=(1, 3, 64, 64)).astype("float32")),
        "im_shape": paddle.to_tensor([[64.0, 64.0]]),
        "scale_factor": paddle.to_tensor([[1.0, 1.0]]),
    }
    a, b = model.predict(batch), fresh.predict(batch)
    assert np.array_equal(a["bbox"].numpy(), b["bbox"].numpy()) and a["bbox"].shape[0] > 0

    images = sorted(
        os.path.join(tiny_demo_data, "samples", n)
        for n in os.listdir(os.path.join(tiny_demo_data, "samples"))
    )
    ours, _ = Predictor(cfg, "", model=model).predict(images)
    theirs, label_list = Predictor(cfg, "", model=fresh).predict(images)
    assert label_list == labels and len(ours) == len(images)
    for r1, r2 in zip(ours, theirs):
        assert r1["im_file"] == r2["im_file"] and len(r1["bbox"]) > 0
        assert np.array_equal(r1["bbox"], r2["bbox"])


def test_republish_replaces_entry_and_refuses_upstream_names(trained, tmp_path):
    _, opts, _, prefix, index = trained
    # an eval record about other weights is not published as these weights' metrics
    other = {
        "weights": str(tmp_path / "run" / "best_model.pdparams"),
        "iteration": 3,
        "metrics": {"AP": 0.5},
    }
    (tmp_path / "run" / "eval_metrics.json").write_text(json.dumps(other))
    out = str(tmp_path / "dist")
    publish(
        DEMO_CONFIG, prefix, out, url_base="https://example.org/m", index_path=index, overrides=opts
    )
    first = load_index(index).get("yolov3_mobilenet_v1_demo")
    assert first.metrics == {} and first.urls == (
        "https://example.org/m/yolov3_mobilenet_v1_demo.tar.gz",
    )

    with open(index, encoding="utf-8") as f:
        text = f.read()
    assert text.count("- name: yolov3_mobilenet_v1_demo\n") == 1
    publish(DEMO_CONFIG, prefix, out, index_path=index, overrides=opts, dataset="shapes")
    second = load_index(index).get("yolov3_mobilenet_v1_demo")
    assert (
        second.urls == ()
        and second.dataset == "shapes"
        and len(load_index(index)) == len(load_index(DEFAULT_INDEX)) + 1
    )
    with open(index, encoding="utf-8") as f:
        new_text = f.read()
    assert new_text.count("- name: yolov3_mobilenet_v1_demo\n") == 1
    assert (
        new_text.split("- name: yolov3_mobilenet_v1_demo")[0]
        == text.split("- name: yolov3_mobilenet_v1_demo")[0]
    )

    with pytest.raises(
        PublishError,
        match="'yolov3_darknet53_270e_coco' is a pdparams entry .* choose another --name",
    ):
        publish(
            DEMO_CONFIG,
            prefix,
            out,
            name="yolov3_darknet53_270e_coco",
            index_path=index,
            overrides=opts,
        )
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(
        PublishError, match="the label list has 2 names but the config says num_classes: 4"
    ):
        publish(DEMO_CONFIG, prefix, out, index_path=index, overrides=opts, label_list=str(labels))
    with pytest.raises(ppdet.zoo.weights.WeightsError, match="does not fit this model"):
        publish(
            DEMO_CONFIG, prefix, out, index_path=index, overrides=opts + ["MobileNet.scale=0.5"]
        )


def test_publish_tool_writes_only_the_tarball_with_no_index(trained, tmp_path):
    _, opts, _, prefix, _ = trained
    out = tmp_path / "dist"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "publish_model.py"),
            "-c",
            DEMO_CONFIG,
            "-o",
            *opts,
            f"weights={prefix}",
            "--output_dir",
            str(out),
            "--name",
            "cli_model",
            "--no_index",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(out) == ["cli_model.tar.gz"] and "wrote" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "publish_model.py"),
            "-c",
            DEMO_CONFIG,
            "-o",
            *opts,
            f"weights={tmp_path}/missing",
            "--output_dir",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert (
        proc.returncode == 1 and proc.stderr.count("\n") == 1 and "weights not found" in proc.stderr
    )
