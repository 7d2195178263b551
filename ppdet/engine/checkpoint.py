"""Training checkpoints: ``<prefix>.pdparams`` (model weights, PaddleDetection format) and
``<prefix>.pdopt`` (optimizer + LR state, epoch, iteration, resolved config).

Both files are written atomically (temp file, fsync, rename), weights first, and an older
``.pdopt`` of the same name is removed before the new weights are written: a ``.pdopt`` only
exists beside the weights it belongs to, so a checkpoint with a ``.pdopt`` is always complete,
and one being written when the process died (even by SIGKILL) is never picked for resume.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import re

import paddle

from ppdet.atomic_io import atomic_path
from ppdet.checkpoint import (
    WeightsError,
    load_state_dict,
    read_state_dict,
    safe_load,
    tensors_as_arrays,
)

STATE_VERSION = 1


def _rename_keys(state: dict, renames: list[tuple[str, str]]) -> dict:
    """Rename keys that start with ``old + "_"`` (accumulators: ``<param>_velocity_0``)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            value = _rename_keys(value, renames)
        for old, new in renames:
            if key == old or key.startswith(old + "_"):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer) -> dict:
    """Optimizer state keyed by structured parameter names (``backbone.conv1._conv.weight``).

    Paddle keys accumulators by the runtime parameter name (``conv2d_12.w_0``), which depends
    on how many layers the process built before; structured names survive a restart.
    """
    renames = sorted(
        ((p.name, "@" + n) for n, p in model.named_parameters()), key=lambda r: -len(r[0])
    )
    return _rename_keys(optimizer.state_dict(), renames)


def set_optimizer_state(
    optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer, state: dict
) -> None:
    """Inverse of :func:`optimizer_state` for this process's parameter names."""
    renames = sorted(
        (("@" + n, p.name) for n, p in model.named_parameters()), key=lambda r: -len(r[0])
    )
    optimizer.set_state_dict(_rename_keys(state, renames))


def save_weights(model: paddle.nn.Layer, prefix: str, ema=None) -> str:
    """Write ``<prefix>.pdparams`` atomically (the EMA weights when ``ema`` is given)."""
    path = prefix + ".pdparams"
    with atomic_path(path) as tmp:
        paddle.save(ema.state if ema is not None else model.state_dict(), tmp)
    return path


def save_checkpoint(
    prefix: str,
    model: paddle.nn.Layer,
    optimizer: paddle.optimizer.Optimizer,
    *,
    epoch: int,
    iteration: int,
    config_text: str,
    ema=None,
    extra: dict | None = None,
) -> str:
    """Save a resumable checkpoint. ``epoch`` = epochs completed, ``iteration`` = steps done.

    With ``ema`` the ``.pdparams`` hold the averaged weights (what eval and infer use) and the
    ``.pdopt`` also holds the raw training weights and the EMA step. ``extra``: plain values
    (numbers, strings, lists, dicts, numpy arrays) the trainer restores, e.g. hook states.
    """
    with contextlib.suppress(FileNotFoundError):  # an older checkpoint of this name
        os.remove(prefix + ".pdopt")
    save_weights(model, prefix, ema)
    state = {
        "version": STATE_VERSION,
        "optimizer": optimizer_state(optimizer, model),
        "epoch": epoch,
        "iteration": iteration,
        "config": config_text,
        "extra": extra or {},
    }
    if ema is not None:
        state["model"] = model.state_dict()
        state["ema"] = ema.state_dict()
    with atomic_path(prefix + ".pdopt") as tmp:
        paddle.save(state, tmp)
    return prefix


def _strip_suffix(path: str) -> str:
    for suffix in (".pdparams", ".pdopt"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def latest_checkpoint(folder: str) -> str | None:
    """Prefix of the complete checkpoint in ``folder`` written last (its ``.pdopt``'s time;
    on a tie the larger number in the name), or None. ``epoch_N`` and ``iter_N`` of one run
    compare by when they were written, and a new run in an old folder finds its own."""
    best, best_key = None, None
    for opt in glob.glob(os.path.join(folder, "*.pdopt")):
        prefix = opt[: -len(".pdopt")]
        if not os.path.isfile(prefix + ".pdparams"):
            continue
        match = re.search(r"(\d+)$", os.path.basename(prefix))
        try:
            key = (os.stat(opt).st_mtime_ns, int(match.group(1)) if match else -1)
        except FileNotFoundError:  # removed meanwhile
            continue
        if best_key is None or key > best_key:
            best, best_key = prefix, key
    return best


def remove_partial_writes(folder: str) -> list[str]:
    """Delete the temp files of checkpoint writes a killed process left in ``folder``
    (``.<name>.pdparams.<random>.tmp``, ``.pdopt`` alike); returns their paths."""
    removed = []
    for pattern in (".*.pdparams.*.tmp", ".*.pdopt.*.tmp"):
        for path in glob.glob(os.path.join(folder, pattern)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def resolve_resume(path: str) -> str:
    """A checkpoint prefix from a prefix, a ``.pdparams``/``.pdopt`` file or a run folder."""
    if os.path.isdir(path):
        prefix = latest_checkpoint(path)
        if prefix is None:
            raise WeightsError(f"no complete checkpoint (.pdparams + .pdopt) in folder {path}")
        return prefix
    prefix = _strip_suffix(path)
    if not os.path.isfile(prefix + ".pdopt"):
        raise WeightsError(
            f"cannot resume from {path}: {prefix}.pdopt is missing "
            "(a weights-only file can be fine-tuned from with -o pretrain_weights=...)"
        )
    return prefix


def load_checkpoint(
    prefix: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, ema=None
) -> dict:
    """Restore model, optimizer (with its LR scheduler) and EMA from ``prefix``; return the state."""
    prefix = resolve_resume(prefix)
    try:  # arrays and plain values only, as for .pdparams
        state = tensors_as_arrays(safe_load(prefix + ".pdopt"))
    except pickle.UnpicklingError as e:
        raise WeightsError(f"unreadable training state: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise WeightsError(f"{prefix}.pdopt: not a ppdet training state (version mismatch)")
    if "model" in state:  # saved with EMA: the .pdparams hold the average
        load_state_dict(model, state["model"], prefix + ".pdopt", strict=True)
        if ema is not None:
            ema.set_state(read_state_dict(prefix + ".pdparams"), state["ema"])
    else:
        path = prefix + ".pdparams"
        load_state_dict(model, read_state_dict(path), path, strict=True)
        if ema is not None:
            ema.set_state({k: v.numpy() for k, v in model.state_dict().items()}, {"step": 0})
    set_optimizer_state(optimizer, model, state["optimizer"])
    return state
