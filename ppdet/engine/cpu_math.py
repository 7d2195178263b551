"""CPU math settings the tools fix before Paddle loads, so that a run's numbers are the same on
every run, however busy the machine is.

On the CPU Paddle computes through MKL (matrix products, convolutions as im2col + GEMM) and
OpenMP. A sum split over two threads is added in another order than over one, so the weights
of a training run depend on the number of threads. ``configure_cpu_math`` makes that number
an explicit, fixed choice:

- ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``: 1 unless the environment sets them (1 is what
  Paddle picks for OpenMP when unset; MKL would otherwise follow ``MKL_NUM_THREADS`` alone).
  One thread is also the fastest choice on a shared machine: with 2 threads on 2 busy cores
  each step waits for the slower thread (about 6x slower per iteration measured here);
- ``MKL_DYNAMIC=FALSE`` and ``OMP_DYNAMIC=FALSE``: a thread count above 1 is used as given;
  with dynamic adjustment (MKL's default) MKL and OpenMP may use fewer threads than asked,
  e.g. depending on problem size or system load, and the numbers would change with them;
- ``MKL_DEBUG_CPU_TYPE=5`` on AMD CPUs with AVX2: MKL takes its AVX2 kernels instead of its
  generic ones (about 1.7x faster training measured here). MKL reads it from the
  environment the process started with, so the tool restarts itself once to set it.

Measured on this 2-core machine, four demo training steps (tools/train.py, same seed) end at
loss 207.4010 with 1 thread, 206.7454 with 2 fixed threads and 207.9733 with 2 threads and
MKL's default dynamic adjustment; with the settings above, repeated runs (also with another
Python hash seed and a busy core) give identical loss lines and bit-identical weights
(tests/engine/test_cpu_math.py).

A value already in the environment is kept: whoever sets ``OMP_NUM_THREADS=4`` gets 4 threads,
the same 4 on every run. Numbers are reproducible for the same thread count, Paddle build and
CPU type; another CPU model may take other MKL kernels and give slightly different numbers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

# variable -> value used when the environment does not set it
FIXED_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
}
AMD_AVX2_MKL = {"MKL_DEBUG_CPU_TYPE": "5"}


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read(65536)
    except OSError:
        return ""


def cpu_math_env(environ: MutableMapping[str, str], cpuinfo: str) -> dict[str, str]:
    """The variables to add to ``environ`` (those it lacks), given /proc/cpuinfo's text."""
    wanted = dict(FIXED_DEFAULTS)
    if "AuthenticAMD" in cpuinfo and " avx2" in cpuinfo:
        wanted.update(AMD_AVX2_MKL)
    return {k: v for k, v in wanted.items() if k not in environ}


def configure_cpu_math() -> None:
    """Set the missing variables (see the module docstring); call before anything imports
    Paddle. Restarts the process once (same ``sys.argv``) when MKL_DEBUG_CPU_TYPE is added.
    Does nothing once Paddle is imported (too late to take effect)."""
    if "paddle" in sys.modules:
        return
    added = cpu_math_env(os.environ, _cpuinfo())
    os.environ.update(added)
    if "MKL_DEBUG_CPU_TYPE" in added:
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, *sys.argv])
