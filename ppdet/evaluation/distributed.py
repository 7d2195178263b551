"""Distributed evaluation: each process scores its share of the batches (``EvalBatchSampler``
deals the single-process batches round-robin), then the detections are gathered into rank
0's evaluator, which computes the same numbers one process would.

    evaluator.update(...)                 # every process, its own batches
    if merge_shards(evaluator):           # collective: every process calls it
        metrics = evaluator.accumulate()  # rank 0 only
    metrics = share(metrics)              # collective: rank 0's dict on every process

Evaluators provide ``state()`` (their gathered detections as plain picklable values) and
``merge(states)``; their numbers do not depend on the order in which images arrive
(COCOeval by construction, VOC by matching ties in dataset order).
"""

from __future__ import annotations

from typing import Any

import paddle.distributed as dist

__all__ = ["merge_shards", "share"]


def merge_shards(evaluator: Any) -> bool:
    """Gather every process's detections into rank 0's ``evaluator`` (a collective call in a
    multi-process run). Returns True where ``accumulate`` should run: rank 0, or the only
    process."""
    if dist.get_world_size() == 1:
        return True
    states: list[Any] = []
    dist.all_gather_object(states, evaluator.state())
    if dist.get_rank() != 0:
        return False
    evaluator.reset()
    evaluator.merge(states)  # rank order; the evaluator restores dataset order
    return True


def share(value: Any) -> Any:
    """Rank 0's ``value`` on every process (a collective call in a multi-process run)."""
    if dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
