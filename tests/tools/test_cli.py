"""The command lines end to end on the tiny demo set: train -> eval -> infer, and their errors."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides

ENV = dict(os.environ, PYTHONWARNINGS="ignore")


def tool(name, *args, check=True):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", name), *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_train_eval_infer(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out")) + ["epoch=1"]
    out = tool("train.py", "-c", DEMO_CONFIG, "--eval", "-o", *opts).stdout
    assert "iter [2/2]" in out and "loss_obj" in out and "eta" in out
    run_dir = tmp_path / "out" / "yolov3_mobilenet_v1_demo"
    assert (run_dir / "model_final.pdparams").is_file() and (
        run_dir / "best_model.pdparams"
    ).is_file()
    weights = f"weights={run_dir / 'model_final'}"

    out = tool("eval.py", "-c", DEMO_CONFIG, "-o", *opts, weights).stdout
    assert "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]" in out
    assert "loaded 241" in out  # the weight-load report
    assert "eval summary: AP@[.5:.95] = " in out and "mAP@0.5 = " in out

    infer_out = tmp_path / "infer"
    out = tool(
        "infer.py",
        "-c",
        DEMO_CONFIG,
        "-o",
        *opts,
        weights,
        "--draw_threshold",
        "0.0",
        "--infer_dir",
        os.path.join(tiny_demo_data, "samples"),
        "--output_dir",
        str(infer_out),
    ).stdout
    assert "2 images" in out
    assert sorted(os.listdir(infer_out)) == ["bbox.json", "sample_00.jpg", "sample_01.jpg"]
    results = json.loads((infer_out / "bbox.json").read_text())
    assert [os.path.basename(r["image"]) for r in results] == ["sample_00.jpg", "sample_01.jpg"]
    for det in (d for r in results for d in r["detections"]):
        assert det["category"] in ("circle", "square", "triangle", "cross")
        assert len(det["bbox"]) == 4 and 0.0 <= det["score"] <= 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["-o", "MobileNet.scael=0.5"],
            "MobileNet.scael: unknown key for MobileNet; did you mean 'scale'?",
        ),
        (["-o", "architecture=YOLOv4"], "architecture: unknown architecture class 'YOLOv4'"),
        (["-o", "TrainReader.batch_size=eight"], "TrainReader.batch_size"),
    ],
)
def test_config_errors_are_one_line(args, message):
    proc = tool("train.py", "-c", DEMO_CONFIG, *args, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_missing_weights_and_images_are_one_line(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    proc = tool("eval.py", "-c", DEMO_CONFIG, "-o", *opts, f"weights={tmp_path}/nope", check=False)
    assert proc.returncode == 1 and "weights not found" in proc.stderr and "nope" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    proc = tool(
        "infer.py",
        "-c",
        DEMO_CONFIG,
        "-o",
        f"weights={tmp_path}/nope",
        "--infer_img",
        str(tmp_path / "none.jpg"),
        check=False,
    )
    assert proc.returncode == 1 and "--infer_img: no such file" in proc.stderr


@pytest.mark.parametrize(
    "name, section, extra",
    [("train.py", "TrainDataset", ["--eval"]), ("eval.py", "EvalDataset", [])],
)
def test_missing_dataset_names_the_file_and_the_download_script(tmp_path, name, section, extra):
    config = os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_270e_coco.yml")
    missing = tmp_path / "nowhere"
    opts = [f"TrainDataset.dataset_dir={missing}", f"EvalDataset.dataset_dir={missing}"]
    proc = tool(name, "-c", config, "-o", *opts, "weights=x", *extra, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and f"{section}: annotation file not found" in lines[0]
    assert str(missing) in lines[0] and "python dataset/coco/download_coco.py" in lines[0]


def test_resume_from_weights_only_file_explains(tiny_demo_data, tmp_path):
    (tmp_path / "w.pdparams").write_bytes(b"")
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    proc = tool(
        "train.py", "-c", DEMO_CONFIG, "-o", *opts, "-r", str(tmp_path / "w.pdparams"), check=False
    )
    assert proc.returncode == 1 and "w.pdopt is missing" in proc.stderr
