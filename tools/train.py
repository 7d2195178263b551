"""Train a detector: python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml [--eval]

Several devices: python -m paddle.distributed.launch --devices 0,1 tools/train.py -c CONFIG
(CPU processes: --nproc_per_node 2)."""

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
        metavar="CHECKPOINT|FOLDER|auto",
        help="continue exactly where a run stopped: a checkpoint prefix, a run folder (its "
        "latest complete checkpoint), or 'auto' (the latest of --output_dir, else a new run)",
    )
    parser.add_argument(
        "--amp",
        nargs="?",
        const="auto",
        default=False,
        choices=["auto", "fp16", "bf16"],
        help="mixed precision on a GPU: bf16 where supported, else fp16 with dynamic loss "
        "scaling (or name one); unsupported on the CPU (said so, trains in float32)",
    )
    parser.add_argument(
        "--scale_schedule",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale LR and iterations by total batch / reference_batch_size (the linear "
        "rule; --no-scale_schedule keeps the config's values)",
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

    trainer = Trainer(
        cfg,
        output_dir=args.output_dir,
        amp=args.amp,
        use_vdl=args.use_vdl,
        scale_schedule=args.scale_schedule,
    )
    trainer.train(validate=args.eval, resume=args.resume)
    return 0


if __name__ == "__main__":
    run(main)
