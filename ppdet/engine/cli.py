"""What the tools/*.py command lines share: -c/-o parsing and one-line errors."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import warnings
from typing import Callable

warnings.filterwarnings("ignore", message="No ccache found")


def base_parser(description: str) -> argparse.ArgumentParser:
    use_all_cores()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument(
        "-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="override config keys, e.g. -o weights=out/model_final TrainReader.batch_size=4",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return parser


def use_all_cores() -> None:
    """Let Paddle's CPU kernels use the cores this process may use (~1.15x per step here).

    Paddle pins OMP_NUM_THREADS to 1 at import unless it is set, and warns on stderr when it
    is set above 1; so it is set before Paddle is imported and that warning is swallowed. Under
    ``paddle.distributed.launch`` the cores are shared between the processes. An explicit
    OMP_NUM_THREADS is left alone.
    """
    if "OMP_NUM_THREADS" in os.environ or "paddle" in sys.modules:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    procs = int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // max(1, procs)))
    with contextlib.redirect_stderr(io.StringIO()):
        import paddle  # noqa: F401


def load_from_args(args: argparse.Namespace):
    """The validated config; prints it and exits with ``--print-config``."""
    import ppdet
    from ppdet.config import dump_config

    cfg = ppdet.load_config(args.config, args.opt)
    if args.print_config:
        print(dump_config(cfg), end="")
        sys.exit(0)
    return cfg


def run(main: Callable[[], int | None]) -> None:
    """Run a tool's ``main``; known user errors become one line on stderr and exit code 1."""
    from ppdet.config import ConfigError
    from ppdet.engine.trainer import TrainingDiverged
    from ppdet.zoo.weights import WeightsError

    user_errors: tuple[type[BaseException], ...] = (ConfigError, WeightsError, TrainingDiverged, FileNotFoundError)
    try:
        from ppdet.data.errors import DataError

        user_errors += (DataError,)
    except ImportError:
        pass
    try:
        code = main()
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; checkpoints already written are intact", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
