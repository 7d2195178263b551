"""Evaluate a detector: python tools/eval.py -c CONFIG -o weights=output/demo/model_final"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet.engine.cli import base_parser, load_from_args, run  # noqa: E402


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument(
        "--output_dir", default=None, help="where bbox.json (and curve pictures) are written"
    )
    parser.add_argument(
        "--classwise",
        action="store_true",
        help="print the AP of every class and draw precision-recall curves (pr_curves_*.png)",
    )
    args = parser.parse_args()
    cfg = load_from_args(args)

    from ppdet.config import ConfigError
    from ppdet.data import require_annotations
    from ppdet.engine.trainer import Trainer

    if not cfg.get("weights"):
        raise ConfigError("no weights to evaluate: pass -o weights=PATH (a file, URL or zoo name)")
    require_annotations(cfg, "eval")  # before any weights are downloaded

    trainer = Trainer(cfg, output_dir=args.output_dir)
    trainer.load_weights(cfg["weights"], strict=True)
    trainer.evaluate(classwise=args.classwise)
    return 0


if __name__ == "__main__":
    run(main)
