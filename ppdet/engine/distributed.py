"""Multi-process runs under ``python -m paddle.distributed.launch`` (one process per device;
on CPUs the processes talk over gloo): joining the process group, the few collectives the
trainer needs, and saying which process failed.

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
    "describe_failure",
    "is_main",
    "rank",
    "setup",
    "world_size",
]

_PREFIX = "ppdet/"
_STORE_TIMEOUT = 10.0  # s: a failure report never waits longer for the store


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
