"""Training hooks: small objects the trainer calls at fixed points of every step, so a
feature such as the Stitcher plugs into training without the trainer knowing it.

    batch = hook.before_batch(batch)     # each (micro-)batch, before its forward pass
    hook.after_batch(outputs)            # after its loss: model.loss(raw, batch)
                                         # ({"loss", "loss_xxx", other keys})
    hook.after_step(iteration)           # after the optimizer step; every process calls it
                                         # at the same point, so collectives are allowed
    hook.state_dict() / hook.set_state_dict(state)   # kept in checkpoints for resume

With gradient accumulation a step has several micro-batches: ``before_batch`` and
``after_batch`` run for each, ``after_step`` once. ``build_hooks(cfg)`` makes the hooks a
config asks for:

    stitcher: {threshold: 0.1, grid: 2}    # Stitcher (engine/stitcher.py); {}: the defaults,
                                           # null or absent: off

A hook's state is saved under its ``name`` in the checkpoint.
"""

from __future__ import annotations

from typing import Any

from ppdet.config.errors import ConfigError
from ppdet.config.sections import section_check
from ppdet.engine import distributed
from ppdet.engine.stitcher import Stitcher

__all__ = ["StitcherHook", "TrainHook", "build_hooks"]

SCALES = ("small", "medium", "large")


class TrainHook:
    """Base class: every call does nothing."""

    name = "hook"

    def before_batch(self, batch: dict) -> dict:
        return batch

    def after_batch(self, outputs: dict) -> None:
        pass

    def after_step(self, iteration: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def set_state_dict(self, state: dict) -> None:
        pass


class StitcherHook(TrainHook):
    """Feeds the model's ``reg_loss_by_scale`` (a key of its ``loss()`` dict) to a
    ``Stitcher`` and lets it stitch the next step's batches. The loss sums of a step (all its
    micro-batches) are summed over the processes before the Stitcher sees them, so every
    process takes the same decision."""

    name = "stitcher"

    def __init__(self, threshold: float = 0.1, grid: int = 2) -> None:
        self.stitcher = Stitcher(threshold=threshold, grid=grid)
        self.pending = [0.0, 0.0, 0.0]  # small, medium, large of the current step
        self.seen = False  # any after_batch in the current step

    def before_batch(self, batch: dict) -> dict:
        return self.stitcher.before_batch(batch)

    def after_batch(self, outputs: dict) -> None:
        parts = outputs.get("reg_loss_by_scale")
        if parts is None:
            raise ConfigError(
                "stitcher: the model's training outputs have no 'reg_loss_by_scale', so its "
                "head does not support the Stitcher (docs/contracts.md); remove the stitcher "
                "section from the config"
            )
        for i, key in enumerate(SCALES):
            value = parts.get(key, 0.0)
            self.pending[i] += float(value.item() if hasattr(value, "item") else value)
        self.seen = True

    def after_step(self, iteration: int) -> None:
        if not self.seen:
            return
        sums = distributed.all_reduce_sum(self.pending)
        self.stitcher.after_step(dict(zip(SCALES, sums, strict=True)))
        self.pending, self.seen = [0.0, 0.0, 0.0], False

    def state_dict(self) -> dict:
        return self.stitcher.state_dict()

    def set_state_dict(self, state: dict) -> None:
        self.stitcher.set_state_dict(state)


_STITCHER_KEYS = {"threshold": (int, float), "grid": (int,)}


@section_check("stitcher")
def check_stitcher_section(section: Any) -> None:
    """``stitcher: {threshold, grid}`` (or null/{} for the defaults), checked at load time."""
    if section is None:
        return
    if not isinstance(section, dict):
        raise ConfigError(f"stitcher: expected a mapping {{threshold, grid}}, got {section!r}")
    for key, value in section.items():
        if key not in _STITCHER_KEYS:
            raise ConfigError(f"stitcher.{key}: unknown key; accepted: threshold, grid")
        if isinstance(value, bool) or not isinstance(value, _STITCHER_KEYS[key]):
            raise ConfigError(f"stitcher.{key}: expected a number, got {value!r}")
    try:
        Stitcher(**section)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def build_hooks(cfg: dict) -> list[TrainHook]:
    """The hooks ``cfg`` asks for, in calling order."""
    hooks: list[TrainHook] = []
    if cfg.get("stitcher") is not None:
        check_stitcher_section(cfg["stitcher"])
        hooks.append(StitcherHook(**cfg["stitcher"]))
    return hooks
