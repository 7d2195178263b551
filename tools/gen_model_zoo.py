"""Write MODEL_ZOO.md from the model zoo index (ppdet/zoo/models.yml).

python tools/gen_model_zoo.py            # (re)write MODEL_ZOO.md
python tools/gen_model_zoo.py --check    # exit 1 when MODEL_ZOO.md is stale
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppdet.atomic_io import atomic_write_text  # noqa: E402
from ppdet.zoo.index import DEFAULT_INDEX, ZooIndexError, load_index, render_markdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=DEFAULT_INDEX, help="index file (default: %(default)s)")
    parser.add_argument(
        "--output", default=os.path.join(ROOT, "MODEL_ZOO.md"), help="page to write"
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args(argv)
    try:
        text = render_markdown(load_index(args.index))
    except ZooIndexError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    current = None
    if os.path.isfile(args.output):
        with open(args.output, encoding="utf-8") as f:
            current = f.read()
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run python tools/gen_model_zoo.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != text:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
