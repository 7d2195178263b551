"""Multi-process training through Paddle's own launcher, 2 CPU processes."""

import os
import subprocess
import sys

from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides


def test_launch_two_processes_shards_data_and_rank0_saves(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    log_dir = tmp_path / "log"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "paddle.distributed.launch",
            "--nproc_per_node",
            "2",
            "--log_dir",
            str(log_dir),
            os.path.join(ROOT, "tools", "train.py"),
            "-c",
            DEMO_CONFIG,
            "-o",
            *opts,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    rank0 = (log_dir / "workerlog.0").read_text()
    assert proc.returncode == 0, proc.stdout[-2000:] + rank0[-2000:]
    # 8 images, batch 4 per process, 2 processes: one step per epoch, two epochs
    assert "iter [2/2]" in rank0 and "iter [3/" not in rank0
    run_dir = tmp_path / "out" / "yolov3_mobilenet_v1_demo"
    assert (run_dir / "model_final.pdparams").is_file() and (run_dir / "epoch_2.pdopt").is_file()
    assert "saved checkpoint" not in (log_dir / "workerlog.1").read_text()  # only rank 0 writes
