"""Test helper: start ``python -m paddle.distributed.launch`` and make sure that nothing it
started outlives the test.

Paddle's launcher starts every worker in its own session (``os.setsid``), so killing the
launcher's process group does not reach them. Every launch gets a unique marker in its
environment, which the workers (and their data-loader children) inherit; ``kill_all`` ends
each process that carries it, even after the launcher itself is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

from tests.conftest import ROOT

MARKER = "PPDET_TEST_LAUNCH"


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except OSError:
        return {}
    env = {}
    for item in items:
        key, _, value = item.partition(b"=")
        env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class Launch:
    """One launcher process running ``script args`` on ``nproc`` CPU processes."""

    def __init__(self, script: str, args: list[str], log_dir: str, nproc: int = 2) -> None:
        self.marker = uuid.uuid4().hex
        self.log_dir = log_dir
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc)]
        cmd += ["--log_dir", log_dir, script, *args]
        env = dict(os.environ, PYTHONWARNINGS="ignore", **{MARKER: self.marker})
        env.pop("CUDA_VISIBLE_DEVICES", None)
        self.out_path = os.path.join(os.path.dirname(log_dir), os.path.basename(log_dir) + ".out")
        self._out = open(self.out_path, "w")  # noqa: SIM115  (closed in wait/kill_all)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def ours(self) -> list[int]:
        """Pids of the processes of this launch other than the launcher."""
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != self.proc.pid:
                if _environ(int(name)).get(MARKER) == self.marker:
                    pids.append(int(name))
        return pids

    def worker_pids(self) -> dict[int, int]:
        """{rank: pid} of the training processes (the launcher's children)."""
        found = {}
        for pid in self.ours():
            rank = _environ(pid).get("PADDLE_TRAINER_ID")
            if rank is not None and _parent(pid) == self.proc.pid:
                found[int(rank)] = pid
        return found

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._out.flush()

    def output(self) -> str:
        """The launcher's output and every worker log."""
        if not self._out.closed:
            self._out.flush()
        parts = [open(self.out_path, errors="replace").read()]
        for name in sorted(os.listdir(self.log_dir)) if os.path.isdir(self.log_dir) else []:
            if name.startswith("workerlog."):
                with open(os.path.join(self.log_dir, name), errors="replace") as f:
                    parts.append(f"==> {name}\n{f.read()}")
        return "\n".join(parts)

    def log(self, rank: int) -> str:
        path = os.path.join(self.log_dir, f"workerlog.{rank}")
        return open(path, errors="replace").read() if os.path.isfile(path) else ""

    def kill_all(self) -> None:
        """SIGKILL the launcher and everything it started (by the marker)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for _ in range(3):
            pids = self.ours()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        self._out.close()


@contextlib.contextmanager
def launched(script: str, args: list[str], log_dir: str, nproc: int = 2) -> Iterator[Launch]:
    """A running launch; on leaving, whatever it started is killed (test passed or not)."""
    launch = Launch(script, args, log_dir, nproc)
    try:
        yield launch
    finally:
        launch.kill_all()


def run_launch(script: str, args: list[str], log_dir: str, timeout: float = 600) -> Launch:
    """Launch, wait for the end (``timeout`` s, then everything is killed), return it."""
    with launched(script, args, log_dir) as launch:
        launch.wait(timeout)
    return launch


def train_script() -> str:
    return os.path.join(ROOT, "tools", "train.py")


def worker_script() -> str:
    return os.path.join(ROOT, "tests", "tools", "dist_worker.py")
