"""Run by the distributed tests under ``paddle.distributed.launch``: train (as tools/train.py
does) and save this rank's parameters, or evaluate weights and save the metrics; optionally
make one rank fail at an iteration.

    dist_worker.py -c CONFIG -o ... --output_dir DIR [--evaluate] [--fail_rank R --fail_at N]

Writes ``DIR/params_rank<r>.npz`` (training) or ``DIR/metrics_rank<r>.json`` (evaluation).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ppdet.engine.cli import base_parser, load_from_args, run  # noqa: E402
from ppdet.engine.hooks import TrainHook  # noqa: E402


class FailAt(TrainHook):
    """Raises after optimizer step ``iteration``."""

    name = "fail_at"

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_step(self, iteration: int) -> None:
        if iteration == self.iteration:
            raise RuntimeError(f"injected failure at iteration {iteration}")


def main() -> int:
    import numpy as np

    parser = base_parser(__doc__)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--fail_rank", type=int, default=None)
    parser.add_argument("--fail_at", type=int, default=1)
    args = parser.parse_args()
    cfg = load_from_args(args)

    from ppdet.engine.trainer import Trainer

    trainer = Trainer(cfg, output_dir=args.output_dir)
    rank = trainer.rank
    if args.evaluate:
        trainer.load_weights(cfg["weights"])
        metrics = trainer.evaluate()
        with open(os.path.join(args.output_dir, f"metrics_rank{rank}.json"), "w") as f:
            json.dump(metrics, f)
        return 0
    if args.fail_rank == rank:
        trainer.hooks.append(FailAt(args.fail_at))
    trainer.train()
    params = {k: v.numpy() for k, v in trainer.model.state_dict().items()}
    np.savez(os.path.join(args.output_dir, f"params_rank{rank}.npz"), **params)
    return 0


if __name__ == "__main__":
    run(main)
