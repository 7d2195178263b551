"""Multi-process runs under ``python -m paddle.distributed.launch`` (one process per device;
on CPUs the processes talk over gloo): joining the process group, the collectives of data
parallel training, and saying which process failed.

Data parallelism: every process starts from rank 0's weights (``broadcast_state``) and,
after the backward passes of a step, replaces its gradients by their mean over the
processes (``average_gradients``: one all-reduce per bucket of flattened gradients, issued
from Python after backward). The processes then take identical optimizer steps. Unlike
``paddle.DataParallel``, whose all-reduces run inside the C++ backward pass (where a lost
peer aborts the process with SIGABRT before any Python code can report it), every
collective here is a Python call that raises, so a process whose peer failed can say which.

When one process raises or is killed, the others fail in their next collective with a
transport error ("Connection reset by peer"), and Paddle's launcher stops them all and
prints the log of the first failed process it sees: often rank 0, whose own error says
nothing about the cause. So every process publishes its host and pid in the launcher's
key-value store when it joins (``setup``), a process that fails records its one-line error
there first (``describe_failure``), and a process that fails because a peer vanished names
that peer: the one that recorded an error first, else one whose process is gone (killed,
e.g. ``kill -9`` or out of memory).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import paddle
import paddle.distributed as dist

__all__ = [
    "all_reduce_sum",
    "average_gradients",
    "broadcast_state",
    "describe_failure",
    "is_main",
    "rank",
    "setup",
    "world_size",
]

_PREFIX = "ppdet/"
_STORE_TIMEOUT = 10.0  # s: a failure report never waits longer for the store
_BUCKET_ELEMENTS = 8 << 20  # gradients all-reduced together (32 MB of float32)


def world_size() -> int:
    return dist.get_world_size()


def rank() -> int:
    return dist.get_rank()


def is_main() -> bool:
    return dist.get_rank() == 0


def _store() -> Any:
    from paddle.base import core

    return core.create_or_get_global_tcp_store()


def setup() -> None:
    """Join the process group of a multi-process launch (once; no-op for one process) and
    publish this process's host and pid for failure reports."""
    if dist.get_world_size() == 1:
        return
    if not dist.is_initialized():
        dist.init_parallel_env()
    _store().set(f"{_PREFIX}pid/{dist.get_rank()}", f"{socket.gethostname()} {os.getpid()}")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum over processes of a short list of numbers (float64)."""
    if dist.get_world_size() == 1 or not values:
        return [float(v) for v in values]
    tensor = paddle.to_tensor([float(v) for v in values], dtype="float64")
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.numpy()]


def broadcast_state(model: paddle.nn.Layer) -> None:
    """Give every process rank 0's parameters and buffers (in place)."""
    if dist.get_world_size() == 1:
        return
    with paddle.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(parameters: list[paddle.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the processes, in place.

    ``parameters``: the trainable parameters, in the same order in every process. A
    parameter without a gradient in this process (not used by this step's loss) counts as a
    zero gradient, and gets the mean, so every process updates the same parameters.
    """
    world = dist.get_world_size()
    if world == 1:
        return
    with paddle.no_grad():
        for bucket in _buckets(parameters):
            grads = [p.grad if p.grad is not None else paddle.zeros_like(p) for p in bucket]
            flat = paddle.concat([g.reshape([-1]) for g in grads])  # [sum of numels]
            dist.all_reduce(flat)
            flat = flat / world
            start = 0
            for p, g in zip(bucket, grads, strict=True):
                mean = flat[start : start + g.size].reshape(g.shape)
                start += g.size
                if p.grad is None:
                    p._set_grad_ivar(mean)
                else:
                    paddle.assign(mean, output=p.grad)


def _buckets(parameters: list[paddle.Tensor]) -> list[list[paddle.Tensor]]:
    """Consecutive groups of one dtype and at most ``_BUCKET_ELEMENTS`` elements (or one
    larger parameter)."""
    buckets: list[list[paddle.Tensor]] = []
    size = 0
    for p in parameters:
        if not buckets or p.dtype != buckets[-1][0].dtype or size + p.size > _BUCKET_ELEMENTS:
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += p.size
    return buckets


def _with_timeout(fn: Callable[[], Any], seconds: float = _STORE_TIMEOUT) -> Any:
    """``fn()`` in a daemon thread; None if it raised or took longer than ``seconds``."""
    box: list[Any] = [None]

    def run() -> None:
        try:
            box[0] = fn()
        except Exception:
            box[0] = None

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return box[0]


def _gone(pid: int) -> bool:
    """Whether local process ``pid`` has ended (absent, or a zombie its parent has not
    reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False


def _first_failure(me: int, error: str) -> tuple[int, str] | None:
    """Record this process's one-line ``error``; return (rank, error) of a process that
    failed earlier, if any."""
    store = _store()
    count = int(store.add(f"{_PREFIX}failures", 1))
    store.set(f"{_PREFIX}failure/{count}", f"{me} {error}")
    if count == 1:
        return None
    first, text = store.get(f"{_PREFIX}failure/1").decode(errors="replace").split(" ", 1)
    return int(first), text


def _dead_peers(me: int, world: int) -> list[str]:
    """Ranks on this host whose process is gone: ``"rank 1 (pid 4242)"``."""
    store, host, dead = _store(), socket.gethostname(), []
    for peer in range(world):
        if peer == me:
            continue
        their_host, pid = store.get(f"{_PREFIX}pid/{peer}").decode().split()
        if their_host == host and _gone(int(pid)):
            dead.append(f"rank {peer} (pid {pid})")
    return dead


def describe_failure(error: str) -> str:
    """The line a failed process of a multi-process run prints last: its own error, or, when
    another process failed first, that process and its error.

    ``error``: this process's one-line error (e.g. ``"RuntimeError: boom"``). In a
    one-process run it is returned unchanged.
    """
    world = dist.get_world_size()
    if world == 1 or not dist.is_initialized():
        return error
    me = dist.get_rank()
    earlier = _with_timeout(lambda: _first_failure(me, error))
    if earlier:
        first, text = earlier
        return (
            f"rank {me} of {world} stopped because rank {first} failed first: {text} "
            f"(rank {first}'s log has the details)"
        )
    dead = _with_timeout(lambda: _dead_peers(me, world)) or []
    if dead:
        return (
            f"rank {me} of {world} stopped because {', '.join(dead)} ended without an error "
            f"message (killed: kill -9, out of memory?); its own error: {error}"
        )
    return f"rank {me} of {world}: {error}"
