"""BENCHMARK.md is shared by the bench scripts: each owns one section between its own markers
(``<!-- name:begin -->`` ... ``<!-- name:end -->``) and rewrites only that, atomically."""

from __future__ import annotations

import os
import platform
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

BENCHMARK_MD = os.path.join(REPO, "BENCHMARK.md")


def write_section(name: str, text: str, path: str = BENCHMARK_MD) -> None:
    """Replace (or append) the section ``name`` of ``path`` with ``text``."""
    from ppdet.atomic_io import atomic_write_text

    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    section = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + section + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    atomic_write_text(path, new)


def machine() -> str:
    """One line: CPU model, cores, Python and Paddle versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import paddle

    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"paddlepaddle {paddle.__version__}"
    )
