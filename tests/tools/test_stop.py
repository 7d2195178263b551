"""Stopping training on request (SIGTERM from a scheduler, Ctrl-C): the step in flight
finishes, a checkpoint is written, ``--resume auto`` continues from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ppdet.engine.stop import StopRequest
from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides

TIMEOUT = 300  # s: generous for a busy machine


def _wait_until(predicate, seconds: float = 10.0) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline
        time.sleep(0.01)


def test_first_signal_is_noted_second_stops_at_once():
    previous = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_until(lambda: stop.requested)
        assert stop.exit_status == 143
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_signal_started_ignored_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopRequest():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_training(opts: list[str], log_path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", DEMO_CONFIG]
    cmd += ["-o", *opts, *extra]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_sigterm_saves_a_checkpoint_and_resume_auto_finishes(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    opts += ["epoch=null", "max_iters=60", "snapshot_iter=1000"]  # no checkpoint of its own
    run_dir = tmp_path / "out" / "yolov3_mobilenet_v1_demo"
    log = tmp_path / "train.log"
    proc = _start_training(opts, log)
    try:
        deadline = time.time() + TIMEOUT
        while "iter [3/60]" not in log.read_text():
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-4000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert code == 143, out[-4000:]
    stopped = [ln for ln in out.splitlines() if "training stopped on request" in ln]
    assert stopped and "--resume auto" in stopped[0], out[-4000:]
    iteration = int(stopped[0].split("after iteration ")[1].split("/")[0])
    assert 3 <= iteration < 60
    assert (run_dir / f"iter_{iteration}.pdparams").is_file()
    assert (run_dir / f"iter_{iteration}.pdopt").is_file()
    assert not (run_dir / "model_final.pdparams").exists()

    proc = _start_training(opts, tmp_path / "resume.log", "--resume", "auto")
    assert proc.wait(TIMEOUT) == 0, (tmp_path / "resume.log").read_text()[-4000:]
    resumed = (tmp_path / "resume.log").read_text()
    assert f"resumed from {run_dir / f'iter_{iteration}'} at iteration {iteration}" in resumed
    assert "training done: 60 iterations" in resumed
