"""Train a detector: python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml [--eval]"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet.engine.cli import base_parser, load_from_args, run  # noqa: E402


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument(
        "--eval",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="evaluate after each snapshot and keep best_model.pdparams",
    )
    parser.add_argument(
        "-r",
        "--resume",
        default=None,
        help="checkpoint prefix or run folder to continue from (exact iteration and LR)",
    )
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="mixed-precision training (GPU only)",
    )
    parser.add_argument(
        "--use_vdl",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log scalars to VisualDL if it is installed",
    )
    parser.add_argument(
        "--output_dir", default=None, help="checkpoint folder (default save_dir/<config name>)"
    )
    args = parser.parse_args()
    cfg = load_from_args(args)

    from ppdet.data import require_annotations
    from ppdet.engine.trainer import Trainer

    require_annotations(cfg, "train")  # before the model is built or weights downloaded
    if args.eval:
        require_annotations(cfg, "eval")

    trainer = Trainer(cfg, output_dir=args.output_dir, amp=args.amp, use_vdl=args.use_vdl)
    trainer.train(validate=args.eval, resume=args.resume)
    return 0


if __name__ == "__main__":
    run(main)
