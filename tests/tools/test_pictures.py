"""Pictures the tools leave behind: training curves beside the checkpoints, PR curves of eval."""

import os

import cv2

from ppdet.engine.history import read_rows
from tests.conftest import DEMO_CONFIG, tiny_overrides
from tests.tools.test_cli import tool


def test_train_draws_curves_and_eval_classwise_draws_pr_curves(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out")) + ["epoch=2", "log_iter=1"]
    out = tool("train.py", "-c", DEMO_CONFIG, "--eval", "-o", *opts).stdout
    run_dir = tmp_path / "out" / "yolov3_mobilenet_v1_demo"
    assert f"training curves: {run_dir / 'training_curves.png'}" in out
    rows = read_rows(str(run_dir / "history.jsonl"))
    train = [r for r in rows if "eval" not in r]
    evals = [r for r in rows if "eval" in r]
    assert [r["iter"] for r in train] == [1, 2, 3, 4] and all("loss" in r for r in train)
    assert [r["iter"] for r in evals] == [2, 4] and all("AP" in r["eval"] for r in evals)
    assert cv2.imread(str(run_dir / "training_curves.png")).shape[2] == 3

    eval_dir = tmp_path / "eval"
    weights = f"weights={run_dir / 'model_final'}"
    out = tool(
        "eval.py",
        "-c",
        DEMO_CONFIG,
        "-o",
        *opts,
        weights,
        "--classwise",
        "--output_dir",
        str(eval_dir),
    ).stdout
    assert "Per-category bbox AP:" in out
    assert f"precision-recall curves: {eval_dir / 'pr_curves_0.png'}" in out
    assert os.path.isfile(eval_dir / "pr_curves_0.png")
