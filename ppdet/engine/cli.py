"""What the tools/*.py command lines share: -c/-o parsing and one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable

from ppdet.engine.cpu_math import configure_cpu_math

warnings.filterwarnings("ignore", message="No ccache found")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument(
        "-o",
        "--opt",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. -o weights=out/model_final TrainReader.batch_size=4",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never download: weights given as URL or zoo name must already be in the cache ($PPDET_HOME)",
    )
    return parser


def load_from_args(args: argparse.Namespace):
    """The validated config; prints it and exits with ``--print-config``."""
    import ppdet
    from ppdet.config import dump_config

    if getattr(args, "offline", False):
        os.environ["PPDET_OFFLINE"] = "1"  # read by ppdet.zoo.download
    cfg = ppdet.load_config(args.config, args.opt)
    if args.print_config:
        print(dump_config(cfg), end="")
        sys.exit(0)
    return cfg


def run(main: Callable[[], int | None]) -> None:
    """Run a tool's ``main``; known user errors become one line on stderr and exit code 1."""
    configure_cpu_math()  # before anything imports Paddle: fixed thread count, MKL kernels
    from ppdet.config import ConfigError
    from ppdet.data.errors import DataError
    from ppdet.engine.trainer import TrainingDiverged
    from ppdet.zoo.legacy_format import LegacyError
    from ppdet.zoo.weights import WeightsError

    user_errors = (
        ConfigError,
        WeightsError,
        TrainingDiverged,
        DataError,
        FileNotFoundError,
        LegacyError,
    )
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
