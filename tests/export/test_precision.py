"""bf16 inference (``precision="bf16"``: Paddle Inference with oneDNN's bfloat16 kernels): on a
tiny exported detector it runs and its top detections agree with fp32 within bf16's rounding;
bad precisions and onnx + bf16 are one-line errors; where bf16 cannot run, one warning and
fp32. bench/precision.py's detection matching on hand-made arrays."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from bench.precision import agreement, match
from ppdet.export import Predictor, export_model, paddle_backend
from ppdet.export.infer_cfg import read_infer_cfg
from ppdet.export.paddle_backend import BackendError, PaddleSession, cpu_bf16_support
from tests.conftest import ROOT

from .conftest import env_without_warnings, photo, tiny_config, tiny_model

BF16, BF16_FAST = cpu_bf16_support()
needs_bf16 = pytest.mark.skipif(
    not BF16, reason="Paddle reports no bf16 support on this CPU (core.supports_bfloat16())"
)
TOP = 5  # fp32 detections per image compared
# bf16 keeps 8 significant bits (~0.4%): a box corner may move by that share of the image. With
# random weights the box regression amplifies it (measured here: up to 0.47% of the image's
# longer side; IoU down to 0.87 on 8 px boxes), so the tolerance is on coordinates, with 2x
# margin; scores moved by at most 0.003. (On the trained demo model: IoU >= 0.98, BENCHMARK.md.)
MAX_SHIFT = 0.01  # of the image's longer side
MAX_SCORE_DIFF = 0.01


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny SSD (softmax scores spread over (0, 1): no saturated ties) exported once."""
    cfg = tiny_config("ssd")
    return export_model(cfg, "", tmp_path_factory.mktemp("bf16") / "ssd", model=tiny_model(cfg))


def images() -> list[np.ndarray]:
    return [photo(120, 160, 0), photo(90, 70, 1), photo(100, 130, 7)]


@contextlib.contextmanager
def backend_warnings():
    """The warning records of paddle_backend's logger inside the block (a handler of its own:
    tools' logging setup stops ppdet records from reaching pytest's caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    log = logging.getLogger(paddle_backend.__name__)
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


def session_files(model_dir):
    info = read_infer_cfg(model_dir / "infer_cfg.yml")
    return model_dir / info.model_file, model_dir / info.params_file


@needs_bf16
def test_bf16_detections_agree_with_fp32(model_dir):
    fp32 = Predictor(model_dir, threads=1)(images())
    predictor = Predictor(model_dir, threads=1, precision="bf16")
    assert predictor.session.precision == "bf16" and predictor.session.use_onednn
    bf16 = predictor(images())
    assert predictor.session.precision == "bf16"  # ran in bf16, no fallback
    # bf16 really ran: the arithmetic differs from fp32's
    assert any(not np.array_equal(a["bbox"], b["bbox"]) for a, b in zip(fp32, bf16))
    compared = 0
    for image, want, got in zip(images(), fp32, bf16):
        assert len(got["bbox"]) > 0
        tolerance = MAX_SHIFT * max(image.shape[:2])
        for row in want["bbox"][np.argsort(-want["bbox"][:, 1], kind="stable")[:TOP]]:
            shift = np.abs(got["bbox"][:, 2:] - row[2:]).max(axis=1)
            ok = (got["bbox"][:, 0] == row[0]) & (shift < tolerance)
            ok &= np.abs(got["bbox"][:, 1] - row[1]) < MAX_SCORE_DIFF
            assert ok.any(), f"image {want['im_id']}: no bf16 partner for {row.tolist()}"
            compared += 1
    assert compared == TOP * len(fp32)


@pytest.mark.parametrize("precision", ["fp16", "BF16", "int8"])
def test_bad_precision_is_one_line(model_dir, precision):
    for make in (
        lambda: PaddleSession(*session_files(model_dir), precision=precision),
        lambda: Predictor(model_dir, precision=precision),
    ):
        with pytest.raises(BackendError) as err:
            make()
        message = str(err.value)
        assert "\n" not in message and repr(precision) in message and "fp32, bf16" in message


def test_onnx_with_bf16_is_one_line(model_dir):
    with pytest.raises(BackendError) as err:
        Predictor(model_dir, backend="onnx", precision="bf16")
    message = str(err.value)
    assert "\n" not in message and 'backend="paddle"' in message and "bf16" in message
    assert not (model_dir / "model.onnx").exists()  # refused before any conversion


def test_bf16_where_it_cannot_run_warns_once_and_runs_fp32(model_dir, monkeypatch):
    files = session_files(model_dir)
    monkeypatch.setattr(paddle_backend, "cpu_bf16_support", lambda: (False, False))
    with backend_warnings() as records:
        session = PaddleSession(*files, threads=1, precision="bf16")
    assert session.precision == "fp32" and session.use_onednn
    assert [r.getMessage() for r in records] == [
        "precision bf16 is not supported by this CPU (Paddle's supports_bfloat16() is False): "
        "running fp32"
    ]
    monkeypatch.undo()
    with backend_warnings() as records:
        session = PaddleSession(*files, threads=1, use_onednn=False, precision="bf16")
    assert session.precision == "fp32" and not session.use_onednn
    assert len(records) == 1 and "needs oneDNN" in records[0].getMessage()
    with backend_warnings() as records:
        session = PaddleSession(*files, threads=1)  # fp32: nothing to say
    assert session.precision == "fp32" and not records


@needs_bf16
def test_bf16_without_native_instructions_warns_and_still_runs_bf16(model_dir, monkeypatch):
    monkeypatch.setattr(paddle_backend, "cpu_bf16_support", lambda: (True, False))
    with backend_warnings() as records:
        session = PaddleSession(*session_files(model_dir), threads=1, precision="bf16")
    assert session.precision == "bf16"
    assert len(records) == 1 and "emulates" in records[0].getMessage()


def deploy(*args: str) -> subprocess.CompletedProcess:
    script = os.path.join(ROOT, "deploy", "python", "infer.py")
    return subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        env=env_without_warnings(),
        cwd=ROOT,
        timeout=600,
    )


def test_deploy_precision_flag(model_dir, tmp_path):
    import cv2

    image = str(tmp_path / "a.png")
    cv2.imwrite(image, photo(120, 160, 0))
    out = str(tmp_path / "out")
    proc = deploy("--model_dir", str(model_dir), "--image_file", image, "--precision", "bf16",
                  "--output_dir", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(os.path.join(out, "bbox.json"))
    assert ("running fp32" in proc.stderr) == (not BF16)
    proc = deploy("--model_dir", str(model_dir), "--image_file", image, "--backend", "onnx",
                  "--precision", "bf16")  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: precision bf16 runs on")


def test_match_and_agreement_hand_values():
    fp32 = np.array(
        [
            [0, 0.9, 0, 0, 10, 10],
            [1, 0.6, 20, 20, 30, 30],
            [1, 0.2, 50, 50, 60, 60],  # bf16 lost it
        ],
        np.float32,
    )
    bf16 = np.array(
        [
            [1, 0.62, 20, 20, 30, 30.5],  # IoU 10 x 10 / 10 x 10.5 = 0.952
            [0, 0.88, 0, 0, 10, 10],
            [2, 0.7, 0, 0, 10, 10],  # another class: unexplained, above 0.5
        ],
        np.float32,
    )
    assert match(fp32, bf16) == [1, 0, -1]
    assert match(fp32, bf16, min_iou=0.96) == [1, -1, -1]
    a = agreement([fp32], [bf16], threshold=0.5)
    assert a["fp32_detections"] == 3 and a["matched"] == pytest.approx(2 / 3)
    assert a["shown"] == 2 and a["shown_matched"] == 1.0
    assert a["bf16_unexplained_shown"] == 1
    assert a["max_score_diff"] == pytest.approx(0.02, abs=1e-6)
    assert a["max_unmatched_score"] == pytest.approx(0.2)
    assert a["min_iou"] == pytest.approx(100 / 105, abs=1e-6)
