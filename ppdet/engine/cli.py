"""What the tools/*.py command lines share: -c/-o parsing, logging, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from ppdet.engine.cpu_math import configure_cpu_math
from ppdet.engine.stop import TrainingStopped

warnings.filterwarnings("ignore", message="No ccache found")

logger = logging.getLogger(__name__)


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
    apply_device(cfg)
    return cfg


def apply_device(cfg: dict) -> None:
    """Honour ``use_gpu`` (PaddleDetection's key): false runs on the CPU even with a GPU build
    of Paddle; true on a build without CUDA runs on the CPU with a note. Absent: Paddle's
    default (the GPU when there is one)."""
    use_gpu = cfg.get("use_gpu")
    if use_gpu is None:
        return
    import paddle

    if not use_gpu and paddle.is_compiled_with_cuda():
        paddle.set_device("cpu")
    elif use_gpu and not paddle.is_compiled_with_cuda():
        logger.info("note: use_gpu: true, but this Paddle build has no CUDA; running on the CPU")


class _ToolFormatter(logging.Formatter):
    """Log lines of the tools: ``warning: <message>`` / ``error: <message>``; notes as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        if record.levelno >= logging.WARNING:
            return f"warning: {text}"
        return text


class _ToolHandler(logging.Handler):
    """Writes each record as one line on stderr, above a running progress bar (tqdm)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Show ppdet's log records (notes and warnings from the library) on stderr, one line each."""
    log = logging.getLogger("ppdet")
    if any(isinstance(h, _ToolHandler) for h in log.handlers):
        return
    handler = _ToolHandler()
    handler.setFormatter(_ToolFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False  # not twice when a library configured the root logger


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input, printed as one line: ``ppdet.PpdetError`` (every
    error class of ppdet derives from it) and a missing file named on the command line."""
    from ppdet.errors import PpdetError

    return (PpdetError, FileNotFoundError)


def run(main: Callable[[], int | None]) -> None:
    """Run a tool's ``main``; a user error (``user_errors``) becomes ``error: <message>`` on
    stderr and exit status 1, Ctrl-C exit status 130; anything else is a bug (traceback).

    In a multi-process launch the error line names the process that failed first
    (``engine/distributed.describe_failure``) and the process ends at once with status 1
    (no exit handler may wait for peers that are gone), so the launcher stops the others.
    """
    configure_cpu_math()  # before anything imports Paddle: fixed thread count, MKL kernels
    configure_logging()
    known = user_errors()
    try:
        code = main()
    except known as e:
        _fail(str(e))
    except TrainingStopped as e:
        print(str(e), file=sys.stderr, flush=True)
        sys.exit(e.exit_status)
    except KeyboardInterrupt:
        print("interrupted; checkpoints already written are intact", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if not _distributed():
            raise
        traceback.print_exc()
        lines = str(e).strip().splitlines()
        _fail(f"{type(e).__name__}: {lines[0] if lines else ''}")
    sys.exit(code or 0)


def _distributed() -> bool:
    """Whether this process is part of a running multi-process group."""
    if "paddle" not in sys.modules:
        return False
    import paddle.distributed as dist

    return dist.get_world_size() > 1 and dist.is_initialized()


def _fail(error: str) -> None:
    """Print ``error: ...`` (naming the failed rank in a multi-process run) and exit 1."""
    if not _distributed():
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    from ppdet.engine.distributed import describe_failure

    print(f"error: {describe_failure(error)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)
