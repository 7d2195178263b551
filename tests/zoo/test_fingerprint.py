"""Behaviour fingerprints: the sample images, the comparison, and the round trip
publish -> serve -> fetch -> verify --behaviour (passes), and a perturbed weight (fails)."""

import dataclasses
import io
import json
import os
import shutil
import tarfile

import cv2
import numpy as np
import paddle
import pytest
import yaml

import ppdet
from ppdet.checkpoint import read_safetensors, write_safetensors
from ppdet.engine.checkpoint import save_weights
from ppdet.zoo.__main__ import main
from ppdet.zoo.download import file_sums
from ppdet.zoo.fingerprint import FingerprintError, compare, compute
from ppdet.zoo.index import DEFAULT_INDEX, ZooIndexError, load_index, parse_index
from ppdet.zoo.publish import publish, update_index
from ppdet.zoo.samples import pixel_sha256, sample_images, write_samples
from tests.conftest import DEMO_CONFIG, tiny_overrides
from tests.zoo.http_server import Serve

# the samples are part of every published fingerprint: they must never change silently
PIXELS = {
    "sample_0.png": "f211d3409718d78500776d1fae8e152c453f53ecf64c57c6f42bf541ad9123bc",
    "sample_1.png": "69d478860bd37703f76ac7ec06c2e1af71693bc6e2da503809dc97a925585b44",
    "sample_2.png": "4146325835d8140c58a05394aaac68a1e4d0b1578bcf4fcf4d0fb9563893f52e",
}


def test_samples_are_fixed_small_and_survive_png(tmp_path):
    images = sample_images()
    assert {name: pixel_sha256(image) for name, image in images} == PIXELS
    paths = write_samples(str(tmp_path))
    for (name, image), path in zip(images, paths):
        assert os.path.basename(path) == name and os.path.getsize(path) < 50_000
        assert np.array_equal(cv2.imread(path, cv2.IMREAD_COLOR), image)
        assert image.dtype == np.uint8 and image.shape[2] == 3 and image.std() > 20


def fingerprint(rows_by_image, min_score=0.1, k=3):
    return {
        "version": 1,
        "min_score": min_score,
        "max_per_image": k,
        "images": {
            name: {"pixels": PIXELS[name], "detections": rows}
            for name, rows in rows_by_image.items()
        },
    }


A = [2, 0.9, 10.0, 10.0, 50.0, 40.0]
B = [0, 0.5, 60.0, 20.0, 90.0, 70.0]
C = [1, 0.3, 5.0, 60.0, 30.0, 90.0]


def found(*rows, image="sample_0.png"):
    return {image: np.array(rows, np.float64).reshape(-1, 6)}


def test_compare_accepts_noise_within_tolerance():
    fp = fingerprint({"sample_0.png": [A, B]})
    noisy = [A[0], A[1] + 0.0015, *(v + 0.3 for v in A[2:])]
    assert compare(fp, found(B, noisy, [3, 0.05, 0, 0, 5, 5])) == ([], 2)  # low extra: ignored


def test_compare_names_the_image_and_detection_that_drifted():
    fp = fingerprint({"sample_0.png": [A, B]})
    drift, checked = compare(fp, found([2, 0.85, 10, 10, 50, 40], B))
    assert checked == 2 and len(drift) == 1
    assert drift[0].startswith(
        "sample_0.png #0 (class 2, score 0.9000, box [10.0, 10.0, 50.0, 40.0])"
    )
    assert drift[0].endswith(
        "now score 0.8500 (-0.0500), box [10.0, 10.0, 50.0, 40.0] (sides move up to 0.00 px)"
    )

    drift, _ = compare(fp, found(A, [0, 0.5, 60, 20, 92, 70]))  # a side moved 2 px
    assert len(drift) == 1 and "#1" in drift[0] and "sides move up to 2.00 px" in drift[0]

    drift, _ = compare(fp, found(A))
    assert drift == ["sample_0.png #1 (class 0, score 0.5000, box [60.0, 20.0, 90.0, 70.0]): "
                     "no class-0 detection any more"]  # fmt: skip


def test_compare_flags_a_new_detection_above_the_cut():
    full = fingerprint({"sample_0.png": [A, B, C]}, k=3)  # cut = lowest recorded score 0.3
    assert compare(full, found(A, B, C, [3, 0.29, 0, 0, 9, 9]))[0] == []  # a tie at the cut
    drift, _ = compare(full, found(A, B, C, [3, 0.4, 0, 0, 9, 9]))
    assert drift == ["sample_0.png: new detection (class 3, score 0.4000, box "
                     "[0.0, 0.0, 9.0, 9.0]) that the fingerprint does not have"]  # fmt: skip
    few = fingerprint({"sample_0.png": [A]}, k=3)  # fewer than k recorded: cut = min_score
    assert len(compare(few, found(A, [3, 0.2, 0, 0, 9, 9]))[0]) == 1


def test_a_fingerprint_of_other_samples_cannot_be_checked():
    fp = fingerprint({"sample_0.png": [A]})
    fp["images"]["sample_0.png"]["pixels"] = "0" * 64
    with pytest.raises(FingerprintError, match="sample image sample_0.png is not the one"):
        compare(fp, found(A))
    with pytest.raises(FingerprintError, match="version 99"):
        compare({**fingerprint({"sample_0.png": [A]}), "version": 99}, found(A))


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda f: f.pop("min_score"), "must be a mapping of version"),
        (lambda f: f.update(max_per_image=0), "max_per_image"),
        (lambda f: f["images"]["sample_0.png"].update(pixels="xyz"), "pixels"),
        (lambda f: f["images"]["sample_0.png"]["detections"].append([1, 2]), "detections"),
    ],
)
def test_the_index_validates_fingerprints(mutate, where):
    entry = {
        "name": "m", "family": "yolov3", "architecture": "YOLOv3", "config": "configs/x.yml",
        "dataset": "coco", "format": "ppdet_tarball", "urls": [], "source": "t", "licence": "MIT",
        "fingerprint": fingerprint({"sample_0.png": [A]}),
    }  # fmt: skip
    assert parse_index({"version": 1, "models": [entry]}, "i.yml").get("m").fingerprint
    mutate(entry["fingerprint"])
    with pytest.raises(ZooIndexError, match=where):
        parse_index({"version": 1, "models": [entry]}, "i.yml")


@pytest.fixture
def published(tiny_demo_data, tmp_path, http_server):
    """A tiny random YOLOv3 published into a copy of the index and served over HTTP.

    Its output convolutions get unit-scale weights, as a trained head has: at initialisation
    every score is 0.25 +- 0.001 and a fingerprint says little."""
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    cfg = ppdet.load_config(DEMO_CONFIG, opts)
    paddle.seed(3)
    model = ppdet.build_model(cfg)
    rng = np.random.RandomState(0)
    for name, value in model.state_dict().items():
        if "yolo_output" in name and name.endswith("weight"):
            value.set_value(rng.normal(0, 1.0, value.shape).astype("float32"))
    prefix = str(tmp_path / "run" / "model_final")
    save_weights(model, prefix)
    index = str(tmp_path / "models.yml")
    shutil.copyfile(DEFAULT_INDEX, index)
    tarball = publish(
        DEMO_CONFIG,
        prefix,
        str(tmp_path / "dist"),
        name="tiny_fp",
        url_base=http_server.url("/zoo"),
        index_path=index,
        model_zoo_md=str(tmp_path / "MODEL_ZOO.md"),
        overrides=opts,
    )
    with open(tarball, "rb") as f:
        http_server.route("/zoo/tiny_fp.tar.gz", Serve(f.read()))
    return cfg, model, tarball, index


def test_publish_records_the_fingerprint_in_meta_and_index(published):
    cfg, model, tarball, index = published
    entry = load_index(index).get("tiny_fp")
    with tarfile.open(tarball) as tar:
        meta = json.load(tar.extractfile("tiny_fp/meta.json"))
    assert meta["fingerprint"] == entry.fingerprint
    images = entry.fingerprint["images"]
    assert sorted(images) == sorted(PIXELS) and all(
        images[n]["pixels"] == PIXELS[n] for n in PIXELS
    )
    counts = [len(r["detections"]) for r in images.values()]
    assert all(0 < c <= entry.fingerprint["max_per_image"] for c in counts)
    assert compute(cfg, model) == entry.fingerprint  # the same model gives the same numbers
    with open(index, encoding="utf-8") as f:  # one flow line in models.yml, loadable again
        line = next(s for s in f if s.startswith("  fingerprint: {"))
    assert yaml.safe_load(line)["fingerprint"] == entry.fingerprint


def _perturbed_tarball(tarball, out):
    """The published tarball with the backbone's first conv kernel scaled by 1.2."""
    with tarfile.open(tarball) as tar:
        members = {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}
    scratch = out + ".st"
    with open(scratch, "wb") as f:
        f.write(members["tiny_fp/model.safetensors"][1])
    state = read_safetensors(scratch)
    name = next(k for k, v in state.items() if k.startswith("backbone.") and v.ndim == 4)
    state[name] = state[name] * np.float32(1.2)
    write_safetensors(state, scratch)
    with open(scratch, "rb") as f:
        data = f.read()
    with tarfile.open(out, "w:gz") as tar:
        for member_name, (info, content) in members.items():
            if member_name == "tiny_fp/model.safetensors":
                content = data
                info.size = len(data)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return name


def test_publish_fetch_verify_passes_and_a_perturbed_weight_fails(
    published, tmp_path, http_server, capsys, monkeypatch
):
    _, _, tarball, index = published
    monkeypatch.setenv("PPDET_HOME", str(tmp_path / "fresh_home"))  # fetched, not the local file
    assert main(["verify", "tiny_fp", "--behaviour", "--index", index, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ok: tiny_fp gives its" in out and http_server.count("/zoo/tiny_fp.tar.gz") == 1

    bad = str(tmp_path / "tiny_fp_bad.tar.gz")
    changed = _perturbed_tarball(tarball, bad)
    with open(bad, "rb") as f:
        url = http_server.route("/zoo/tiny_fp_bad.tar.gz", Serve(f.read()))
    good = load_index(index).get("tiny_fp")  # same fingerprint, other weights
    update_index(
        index,
        dataclasses.replace(
            good,
            name="tiny_fp_bad",
            urls=(url,),
            sha256=file_sums(bad)["sha256"],
            size=os.path.getsize(bad),
        ),
    )
    assert main(["verify", "tiny_fp_bad", "--behaviour", "--index", index, "--quiet"]) == 1
    captured = capsys.readouterr()
    drift = [line for line in captured.out.splitlines() if line.startswith("drift: ")]
    assert drift and all("sample_" in line for line in drift), changed
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1  # one line (the Predictor's progress bar may precede it)
    err = errors[0]
    assert err.startswith("error: tiny_fp_bad drifted from its behaviour fingerprint")
    assert "first: sample_" in err


def test_verify_behaviour_needs_a_fingerprint(tmp_path, capsys, http_server):
    entry = {
        "name": "nofp", "family": "yolov3", "architecture": "YOLOv3", "config": "configs/x.yml",
        "dataset": "coco", "format": "pdparams", "source": "t", "licence": "MIT",
        "urls": [http_server.route("/n.pdparams", Serve(b"\x80\x02" + b"n" * 40))],
    }  # fmt: skip
    index = tmp_path / "i.yml"
    index.write_text(yaml.safe_dump({"version": 1, "models": [entry]}))
    assert main(["verify", "nofp", "--behaviour", "--index", str(index), "--quiet"]) == 1
    assert "nofp carries no behaviour fingerprint" in capsys.readouterr().err
