"""The schedule follows the total batch.

A config states the total batch its schedule was written for, ``reference_batch_size``
(e.g. 16 for the Detectron 1x/2x schedules: 8 GPUs x 2 images). A run's total batch is
``T = TrainReader.batch_size x processes x accumulate_steps``; with ``f = T / reference``
the seed zoo's linear rule ("for batch size 8, LR is decreased to 0.01, total training
iterations are doubled, and the decay milestones are scaled by 2") becomes:

- learning rates x f: ``base_lr``, PiecewiseDecay ``values``, CosineDecay ``min_lr``;
- everything counted in iterations / f (rounded): ``max_iters``, ``snapshot_iter``,
  LinearWarmup ``steps``, and in an iteration-based run (``max_iters``) the PiecewiseDecay
  ``milestones`` and CosineDecay ``max_epochs`` / ``last_plateau_epochs`` (which count
  iterations there).

An epoch-based run (``epoch: N``) keeps its epochs and epoch milestones: an epoch already has
1/f times as many iterations. ``plan_schedule`` returns the scaled values and the line the
trainer prints at start; without ``reference_batch_size`` (or with scaling turned off:
``tools/train.py --no-scale_schedule``) the config's values are used as written, and the
line says so.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ppdet.engine.optim import LEARNING_RATE_DEFAULTS, SCHEDULER_DEFAULTS

__all__ = ["SchedulePlan", "plan_schedule"]


@dataclasses.dataclass
class SchedulePlan:
    """What the trainer uses: the (scaled) ``LearningRate`` section, ``max_iters`` (None in
    an epoch-based run), ``snapshot_iter`` (None: not set), the factor and the message."""

    learning_rate: dict
    max_iters: int | None
    snapshot_iter: int | None
    factor: float
    message: str


def _iters(value: float, factor: float) -> int:
    return max(1, int(round(value / factor)))


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plan_schedule(
    cfg: dict,
    batch_size: int,
    world_size: int = 1,
    accumulate_steps: int = 1,
    scale: bool = True,
) -> SchedulePlan:
    """The schedule of ``cfg`` for a run of ``world_size`` processes with ``batch_size``
    images each and ``accumulate_steps`` micro-batches per step (see the module docstring).
    """
    total = batch_size * world_size * accumulate_steps
    lr = copy.deepcopy(cfg.get("LearningRate") or {})
    max_iters = cfg.get("max_iters") or None
    snapshot_iter = cfg.get("snapshot_iter") or None
    reference = cfg.get("reference_batch_size")
    split = f"{world_size} process(es) x {batch_size} image(s)"
    if accumulate_steps > 1:
        split += f" x {accumulate_steps} accumulation steps"
    head = f"schedule: total batch {total} ({split})"
    if not reference:
        note = "the config states no reference_batch_size: learning rate and iterations as written"
        return SchedulePlan(lr, max_iters, snapshot_iter, 1.0, f"{head}; {note}")
    if total == reference:
        note = "the config's reference_batch_size: learning rate and iterations as written"
        return SchedulePlan(lr, max_iters, snapshot_iter, 1.0, f"{head} = {note}")
    if not scale:
        note = (
            f"reference_batch_size {reference}, not scaled (--no-scale_schedule): learning rate "
            "and iterations as written"
        )
        return SchedulePlan(lr, max_iters, snapshot_iter, 1.0, f"{head}; {note}")

    f = total / reference
    changes: list[str] = []

    def change(name: str, old: Any, new: Any) -> Any:
        changes.append(f"{name} {_fmt(old)} -> {_fmt(new)}")
        return new

    lr = {**LEARNING_RATE_DEFAULTS, **lr}
    lr["base_lr"] = change("base_lr", float(lr["base_lr"]), float(lr["base_lr"]) * f)
    schedulers = []
    for sched in lr["schedulers"] or []:
        name = sched.get("name")
        full = {**SCHEDULER_DEFAULTS.get(name, {}), **sched}
        out = dict(sched)
        if name == "PiecewiseDecay":
            if max_iters is not None:
                out["milestones"] = change(
                    "milestones", full["milestones"], [_iters(m, f) for m in full["milestones"]]
                )
            if full.get("values") is not None:
                out["values"] = change("values", full["values"], [v * f for v in full["values"]])
        elif name == "CosineDecay":
            if max_iters is not None:
                out["max_epochs"] = change(
                    "cosine iterations", full["max_epochs"], _iters(full["max_epochs"], f)
                )
                if full["last_plateau_epochs"]:
                    out["last_plateau_epochs"] = _iters(full["last_plateau_epochs"], f)
            if full.get("min_lr") is not None:
                out["min_lr"] = change("min_lr", full["min_lr"], full["min_lr"] * f)
        elif name == "LinearWarmup":
            out["steps"] = change("warmup steps", full["steps"], _iters(full["steps"], f))
        schedulers.append(out)
    lr["schedulers"] = schedulers
    if max_iters is not None:
        max_iters = change("max_iters", max_iters, _iters(max_iters, f))
    if snapshot_iter is not None:
        snapshot_iter = change("snapshot_iter", snapshot_iter, _iters(snapshot_iter, f))
    kind = "iteration-based" if cfg.get("max_iters") else "epoch-based: epochs unchanged"
    message = (
        f"{head}, reference_batch_size {reference}: linear scaling x{f:g} ({kind}): "
        + ", ".join(changes)
        + " (--no-scale_schedule keeps the config's)"
    )
    return SchedulePlan(lr, max_iters, snapshot_iter, f, message)
