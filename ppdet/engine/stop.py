"""Stopping a training run on request without losing its work.

A cluster scheduler that preempts a job sends SIGTERM (``kill PID``, ``docker stop``,
Slurm, Kubernetes) and a user presses Ctrl-C (SIGINT). Either way ``StopRequest`` notes the
signal instead of dying at once: the trainer finishes the optimizer step it is in, writes a
resumable checkpoint, prints how to continue (``--resume auto``) and exits with the shell's
status for that signal (143 for SIGTERM, 130 for SIGINT). A second signal stops at once
(``KeyboardInterrupt``: checkpoints already written stay intact, the step in flight is lost).

In a multi-process run the processes may see the signal at different steps; the trainer
adds ``requested`` into the all-reduce of every step's losses, so all of them stop after the
same step and write one checkpoint.

A signal the process was started with ignored (``nohup``, a background job of a
non-interactive shell ignores SIGINT) stays ignored.
"""

from __future__ import annotations

import logging
import signal
import threading

__all__ = ["StopRequest", "TrainingStopped"]

log = logging.getLogger(__name__)

EXIT_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


class TrainingStopped(Exception):
    """Training stopped on request after writing a checkpoint; ``exit_status`` is the shell's
    status for the signal (128 + signal number)."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


class StopRequest:
    """Context manager: while inside, SIGTERM and SIGINT set ``signal_number`` (the first one
    received) instead of ending the process; on exit the previous handlers come back.

    Outside the main thread (signal handlers can only be set there) it does nothing."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    @property
    def exit_status(self) -> int:
        # a process stopped because another one was signalled: as for SIGTERM
        return EXIT_STATUS.get(self.signal_number, 143)

    def _handle(self, signum: int, frame) -> None:
        if self.requested:  # the second signal: stop now
            raise KeyboardInterrupt
        self.signal_number = signum
        name = signal.Signals(signum).name
        log.warning(
            "%s received: finishing this step, then writing a checkpoint "
            "(send it again to stop at once)",
            name,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in EXIT_STATUS:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                continue  # started ignored (nohup, background job): keep it so
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
