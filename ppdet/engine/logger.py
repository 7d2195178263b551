"""Training progress: smoothed losses, speed and ETA every N iterations; the run's history file
and curves (``history.py``); optional VisualDL."""

from __future__ import annotations

import collections
import datetime
import time


class SmoothedValues:
    """Running window averages of named scalars (losses, timings)."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.values: dict[str, collections.deque] = {}

    def update(self, **named: float) -> None:
        for name, value in named.items():
            self.values.setdefault(name, collections.deque(maxlen=self.window)).append(value)

    def mean(self, name: str) -> float:
        items = self.values.get(name) or [0.0]
        return sum(items) / len(items)

    def names(self) -> list[str]:
        return list(self.values)


def format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class TrainLogger:
    """Prints one line per ``log_iter`` steps: epoch, iteration, lr, each loss, s/it, ETA."""

    def __init__(
        self, total_iters: int, log_iter: int = 20, vdl_dir: str | None = None, history=None
    ) -> None:
        """``history``: a ``TrainingHistory`` that receives each printed line's values."""
        self.total_iters = total_iters
        self.history = history
        self.log_iter = max(1, log_iter)
        self.stats = SmoothedValues(window=self.log_iter)
        self.last_time = time.time()
        self.vdl = self._open_visualdl(vdl_dir) if vdl_dir else None

    @staticmethod
    def _open_visualdl(log_dir: str):
        try:
            from visualdl import LogWriter
        except ImportError:
            print(
                "--use_vdl: VisualDL is not installed (pip install visualdl); scalars are not logged"
            )
            return None
        print(f"VisualDL: logging scalars to {log_dir} (visualdl --logdir {log_dir})")
        return LogWriter(log_dir)

    def step(
        self, epoch: int, epochs: int, iteration: int, lr: float, losses: dict, data_time: float
    ) -> None:
        """Record iteration ``iteration`` (1-based, counted over the whole run)."""
        now = time.time()
        self.stats.update(batch_time=now - self.last_time, data_time=data_time, **losses)
        self.last_time = now
        if self.vdl is not None:
            for name, value in losses.items():
                self.vdl.add_scalar(f"train/{name}", value, iteration)
            self.vdl.add_scalar("train/lr", lr, iteration)
        if iteration % self.log_iter and iteration != self.total_iters:
            return
        loss_text = " ".join(
            f"{n}: {self.stats.mean(n):.4f}" for n in self.stats.names() if n.startswith("loss")
        )
        if self.history is not None:
            names = [n for n in self.stats.names() if n.startswith("loss")]
            self.history.log_train(iteration, lr, {n: self.stats.mean(n) for n in names})
        batch_time = self.stats.mean("batch_time")
        eta = format_eta(batch_time * (self.total_iters - iteration))
        print(
            f"epoch [{epoch + 1}/{epochs}] iter [{iteration}/{self.total_iters}] lr: {lr:.6f} "
            f"{loss_text} time: {batch_time:.3f}s/it data: {self.stats.mean('data_time'):.3f}s "
            f"eta: {eta}",
            flush=True,
        )

    def scalars(self, prefix: str, values: dict, iteration: int) -> None:
        if self.history is not None and prefix == "eval":
            self.history.log_eval(iteration, values)
            self.history.draw()
        if self.vdl is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    self.vdl.add_scalar(f"{prefix}/{name}", value, iteration)
