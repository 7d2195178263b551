"""What a training run did, kept beside its checkpoints: ``history.jsonl`` (one JSON object per
logged step or evaluation) and ``training_curves.png`` drawn from it (losses, learning rate,
eval metrics against the iteration).

Rows: ``{"iter": 120, "lr": 0.001, "loss": 3.2, "loss_obj": ...}`` for training (window-averaged
losses, as logged) and ``{"iter": 500, "eval": {"AP": 0.31, ...}}`` for evaluations. A resumed run
keeps the rows up to the iteration it resumes from and appends after them, so the curves of an
interrupted and resumed run are one picture. A line cut short by a crash is skipped on reading.
"""

from __future__ import annotations

import json
import math
import os

from ppdet.atomic_io import atomic_write_text
from ppdet.plotting import Series, grid, line_chart, write_png

__all__ = ["TrainingHistory"]

# Eval keys drawn when present (others, e.g. per-class AP, are kept in the file only).
CURVE_METRICS = ("AP", "AP50", "mAP", "mask_AP", "mask_AP50")


class TrainingHistory:
    """Appends rows to ``<output_dir>/history.jsonl`` and draws ``training_curves.png``."""

    FILE, PICTURE = "history.jsonl", "training_curves.png"

    def __init__(self, output_dir: str, resume_from: int | None = None) -> None:
        """``resume_from``: the iteration a resumed run restarts at (rows after it are dropped);
        None starts a new history (an old file is replaced)."""
        self.path = os.path.join(output_dir, self.FILE)
        self.picture = os.path.join(output_dir, self.PICTURE)
        kept = [r for r in read_rows(self.path) if r["iter"] <= resume_from] if resume_from else []
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def log_train(self, iteration: int, lr: float, losses: dict[str, float]) -> None:
        self._append(
            {"iter": int(iteration), "lr": float(lr), **{k: float(v) for k, v in losses.items()}}
        )

    def log_eval(self, iteration: int, metrics: dict) -> None:
        numbers = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        self._append({"iter": int(iteration), "eval": numbers})

    def _append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def draw(self) -> str | None:
        """(Re)draw ``training_curves.png`` from the file; returns its path (None: no rows)."""
        image = curves_image(read_rows(self.path))
        return write_png(self.picture, image) if image is not None else None


def read_rows(path: str) -> list[dict]:
    """The rows of a history file in order; missing file -> []; unreadable lines skipped."""
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short when the process died
            if isinstance(row, dict) and isinstance(row.get("iter"), int):
                rows.append(row)
    return rows


def curves_image(rows: list[dict]):
    """One picture [H, W, 3]: losses (log scale), learning rate, and eval metrics if any."""
    train = [r for r in rows if "eval" not in r]
    evals = [r for r in rows if "eval" in r]
    if not train and not evals:
        return None
    charts = []
    if train:
        names = sorted({k for r in train for k in r if k.startswith("loss")})
        names = ["loss"] + [n for n in names if n != "loss"] if "loss" in names else names
        losses = [
            Series(n, [r["iter"] for r in train if n in r], [r[n] for r in train if n in r])
            for n in names
        ]
        charts.append(line_chart(losses, "training losses", "iteration", "loss", log_y=True))
        lr = Series("lr", [r["iter"] for r in train], [r.get("lr", math.nan) for r in train])
        charts.append(line_chart([lr], "learning rate", "iteration", "lr"))
    if evals:
        keys = [k for k in CURVE_METRICS if any(k in r["eval"] for r in evals)]
        metric_series = [
            Series(
                k,
                [r["iter"] for r in evals if k in r["eval"]],
                [r["eval"][k] for r in evals if k in r["eval"]],
            )
            for k in keys
        ]
        if metric_series:
            charts.append(line_chart(metric_series, "evaluation", "iteration", "metric"))
    return grid(charts, cols=len(charts) if len(charts) < 3 else 3)
