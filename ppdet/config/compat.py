"""PaddleDetection 2.x config keys that ppdet accepts without a use for them.

Configs ported from PaddleDetection carry runtime keys (other devices, FLOPs printing, export
settings), reader keys (``inputs_def``) and dataset keys (``data_fields``) that mean nothing
here. Each is accepted, left in the config, and reported once per process by a note (log level
INFO) saying why it has no effect. A key whose value asks for what ppdet does anyway
(``use_xpu: false``) needs no note. Any other key that no code takes stays an error.

PaddleDetection keys that ppdet honours are ordinary keys, not listed here: ``log_iter``,
``snapshot_epoch``, ``save_dir``, ``weights``, ``pretrain_weights``, ``epoch``, ``use_ema``,
``ema_decay``, ``metric``, ``map_type`` (VOC), ``num_classes``, ``use_gpu`` (false: run on the CPU),
``worker_num`` (each reader's default ``num_workers``), ``norm_type`` and other
``__shared__`` defaults (ppdet/config/validate.py).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

logger = logging.getLogger(__name__)

_ALWAYS = object()


@dataclasses.dataclass(frozen=True)
class Ignored:
    """Why a key has no effect; ``same_as_ppdet``: the value that needs no note."""

    why: str
    same_as_ppdet: Any = _ALWAYS


_DEVICES = "ppdet runs on CPUs and CUDA GPUs"

TOP_LEVEL: dict[str, Ignored] = {
    "use_xpu": Ignored(_DEVICES, False),
    "use_npu": Ignored(_DEVICES, False),
    "use_mlu": Ignored(_DEVICES, False),
    "print_flops": Ignored("GFLOPs per backbone are measured by bench/backbones.py", False),
    "print_params": Ignored("parameter counts are measured by bench/backbones.py", False),
    "export": Ignored("model export is not implemented yet"),
    "find_unused_parameters": Ignored(
        "multi-device training averages every parameter's gradient, used or not", False
    ),
    "use_fused_allreduce_gradients": Ignored(
        "gradients are always all-reduced in fused buckets after backward", False
    ),
    "save_prediction_only": Ignored("evaluation always computes the metrics", False),
    "use_wandb": Ignored("Weights & Biases logging is not supported (--use_vdl is)", False),
}

READER: dict[str, Ignored] = {
    "inputs_def": Ignored("input shapes come from the transforms"),
    "collate_batch": Ignored(
        "batches always pad ground truth to one length with pad_gt_mask", True
    ),
}

DATASET: dict[str, Ignored] = {
    "data_fields": Ignored("samples carry every field the dataset loads"),
}

_NOTED: set[str] = set()  # keys already noted in this process


def note_ignored(table: dict[str, Ignored], key: str, value: Any, where: str) -> None:
    """Log why ``key`` (a key of ``table``) has no effect, once per process and key.

    ``where`` names the file and key path, e.g. ``configs/x.yml: TrainDataset.data_fields``.
    """
    entry = table[key]
    if entry.same_as_ppdet is not _ALWAYS and value == entry.same_as_ppdet:
        return
    if key in _NOTED:
        return
    _NOTED.add(key)
    logger.info("note: %s: PaddleDetection option ignored (%s)", where, entry.why)


def forget_notes() -> None:
    """Note every key again (for tests)."""
    _NOTED.clear()
