"""tools/export_model.py and deploy/python/infer.py as a user runs them: an image folder with an
unreadable file, a video, a benchmark run, and one-line errors for bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import cv2
import pytest

from ppdet.config import ConfigError
from ppdet.engine.checkpoint import save_weights
from ppdet.export import Predictor, export_model
from ppdet.export.infer_cfg import read_infer_cfg
from ppdet.export.paddle_backend import BackendError
from tests.conftest import ROOT

from .conftest import CONFIGS, TINY, env_without_warnings, photo, tiny_config, tiny_model

CONFIG = str(CONFIGS / TINY["yolov3"][0])
OPTS = ["num_classes=3", *TINY["yolov3"][1]]


def tool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env_without_warnings(),
        cwd=cwd or ROOT,
        timeout=600,
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return save_weights(tiny_model(tiny_config("yolov3")), str(tmp_path_factory.mktemp("w") / "m"))


@pytest.fixture(scope="module")
def model_dir(weights, tmp_path_factory) -> str:
    """The tiny YOLOv3 exported by tools/export_model.py."""
    out = str(tmp_path_factory.mktemp("export") / "yolov3")
    export = os.path.join(ROOT, "tools", "export_model.py")
    proc = tool(export, "-c", CONFIG, "-o", *OPTS, f"weights={weights}", "--output_dir", out)
    assert proc.returncode == 0, proc.stderr
    assert f"exported YOLOv3 to {out}" in proc.stdout
    assert read_infer_cfg(os.path.join(out, "infer_cfg.yml")).weights == weights
    return out


def deploy(*args: str) -> subprocess.CompletedProcess:
    return tool(os.path.join(ROOT, "deploy", "python", "infer.py"), *args)


def test_deploy_image_dir_skips_an_unreadable_image(model_dir, photos, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in photos:
        (folder / os.path.basename(path)).write_bytes(open(path, "rb").read())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    proc = deploy("--model_dir", model_dir, "--image_dir", str(folder), "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0]
    assert "2 images (1 skipped: unreadable)" in proc.stdout
    assert "timings (one pass" in proc.stdout and "inference" in proc.stdout
    assert sorted(os.listdir(out)) == ["bbox.json", "photo0.png", "photo1.png"]
    entries = json.loads((out / "bbox.json").read_text())
    assert [os.path.basename(e["image"]) for e in entries] == ["photo0.png", "photo1.png"]


def test_deploy_benchmark_prints_stage_medians(model_dir, photos, tmp_path):
    proc = deploy(
        "--model_dir", model_dir, "--image_file", photos[0], "--output_dir", str(tmp_path),
        "--run_benchmark", "--warmup", "1", "--repeats", "3", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("timings")]
    assert "benchmark, median per batch over 3" in line
    assert all(f"{stage} " in line for stage in ("preprocess", "inference", "postprocess"))


def test_deploy_video(model_dir, tmp_path):
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 5, (80, 64))
    for i in range(4):
        writer.write(photo(64, 80, i))
    writer.release()
    out = tmp_path / "out"
    proc = deploy("--model_dir", model_dir, "--video_file", video, "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "4 frames" in proc.stdout
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 4 and os.listdir(out) == ["clip.mp4"]  # no temp files left


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model_dir", "/nonexistent/model"], "--model_dir /nonexistent/model: no such folder"),
        (["--backend", "tensorflow"], "backend must be one of paddle, onnx, got 'tensorflow'"),
        (["--image_file", "/nonexistent.jpg"], "--image_file: no such file: /nonexistent.jpg"),
        (["--video_file", "/nonexistent.mp4"], "--video_file: no such file: /nonexistent.mp4"),
    ],
)
def test_deploy_bad_input_is_one_line(model_dir, photos, args, message):
    base = {"--model_dir": model_dir, "--image_file": photos[0]}
    if "--video_file" in args:
        base.pop("--image_file")
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    proc = deploy(*[x for kv in base.items() for x in kv])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), proc.stderr


@pytest.mark.parametrize(
    "weights_arg, message",
    [
        ("weights=", "no weights: pass -o weights=PATH"),
        ("weights=/nonexistent/model.pdparams", "/nonexistent/model"),
    ],
)
def test_export_tool_bad_weights_is_one_line(weights_arg, message, tmp_path):
    out = tmp_path / "out"
    proc = tool(
        os.path.join(ROOT, "tools", "export_model.py"), "-c", CONFIG, "-o", *OPTS, weights_arg,
        "--output_dir", str(out),
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and message in errors[0], proc.stderr
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing half-written


def test_api_errors(model_dir, tmp_path):
    with pytest.raises(BackendError, match="no such folder"):
        Predictor(tmp_path / "missing")
    with pytest.raises(BackendError, match="backend must be one of"):
        Predictor(model_dir, backend="tf")
    with pytest.raises(ConfigError, match="infer_cfg.yml: not found"):
        Predictor(tmp_path)
    with pytest.raises(ConfigError, match="no weights"):
        export_model(tiny_config("yolov3"), "", tmp_path / "out")
    broken = tmp_path / "broken"
    broken.mkdir()
    text = open(os.path.join(model_dir, "infer_cfg.yml")).read()
    (broken / "infer_cfg.yml").write_text(text)
    with pytest.raises(BackendError, match="model.json: missing"):
        Predictor(broken)
    (broken / "infer_cfg.yml").write_text(text.replace("label_list:", "labels:"))
    with pytest.raises(ConfigError, match="label_list: missing"):
        Predictor(broken)


def test_export_replaces_an_existing_folder(model_dir, tmp_path):
    cfg = tiny_config("ssd")
    out = tmp_path / "m"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    export_model(cfg, "", out, model=tiny_model(cfg))
    assert sorted(p.name for p in out.iterdir()) == [
        "infer_cfg.yml",
        "model.json",
        "model.pdiparams",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_predictor_rejects_a_bad_array(model_dir):
    import numpy as np

    from ppdet.data import DataError

    with pytest.raises(DataError, match="H x W x 3 BGR uint8"):
        Predictor(model_dir, threads=1)([np.zeros((10, 10), np.float32)])


def only_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a failed tool run (and nothing but warnings besides)."""
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), proc.stderr
    return errors[0]


def test_deploy_model_dir_without_or_with_a_corrupt_infer_cfg(model_dir, photos, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.json", "model.pdiparams"):
        (folder / name).write_bytes(open(os.path.join(model_dir, name), "rb").read())
    cfg = folder / "infer_cfg.yml"
    line = only_line(deploy("--model_dir", str(folder), "--image_file", photos[0]))
    assert f"{cfg}: not found" in line and "tools/export_model.py" in line
    cfg.write_text("TestReader: [unclosed\n")
    line = only_line(deploy("--model_dir", str(folder), "--image_file", photos[0]))
    assert f"{cfg}: not valid YAML" in line
    cfg.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff")
    line = only_line(deploy("--model_dir", str(folder), "--image_file", photos[0]))
    assert f"{cfg}: not valid YAML" in line
    text = open(os.path.join(model_dir, "infer_cfg.yml")).read()
    cfg.write_text(text[: text.index("label_list:")])  # cut short
    line = only_line(deploy("--model_dir", str(folder), "--image_file", photos[0]))
    assert f"{cfg}: label_list: missing; re-export with tools/export_model.py" in line


def test_deploy_an_image_that_is_not_an_image(model_dir, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is text, not a JPEG")
    proc = deploy(
        "--model_dir", model_dir, "--image_file", str(fake), "--output_dir", str(tmp_path)
    )
    line = only_line(proc)
    assert line.startswith(f"error: {fake}: cannot be read as an image") and ".jpg" in line
    assert not (tmp_path / "bbox.json").exists()


def test_deploy_a_video_that_cannot_be_opened(model_dir, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\x00" * 64)
    proc = deploy(
        "--model_dir", model_dir, "--video_file", str(fake), "--output_dir", str(tmp_path)
    )
    line = only_line(proc)
    assert f"--video_file: OpenCV cannot open {fake} as a video: pass a video file" in line


def test_deploy_onnx_without_the_extra(model_dir, photos, tmp_path):
    """paddle2onnx / onnxruntime made unimportable: one line saying how to install them."""
    for module in ("paddle2onnx", "onnxruntime", "onnx"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(f"raise ImportError('no {module}')\n")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "deploy", "python", "infer.py"), "--model_dir",
         model_dir, "--image_file", photos[0], "--backend", "onnx"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env=dict(env_without_warnings(), PYTHONPATH=str(tmp_path)),
    )  # fmt: skip
    line = only_line(proc)
    assert "is not installed" in line and 'pip install "ppdet[onnx]"' in line


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime")),
    reason='the onnx extra is not installed (pip install "ppdet[onnx]")',
)
def test_deploy_onnx_for_an_rcnn_says_it_does_not_convert(photos, tmp_path):
    cfg = tiny_config("faster_rcnn")
    out = export_model(cfg, "", tmp_path / "rcnn", model=tiny_model(cfg))
    line = only_line(
        deploy("--model_dir", str(out), "--image_file", photos[0], "--backend", "onnx")
    )
    assert f"{out} (FasterRCNN) does not convert to ONNX" in line
    assert "pd_op.generate_proposals" in line and 'backend="paddle"' in line
