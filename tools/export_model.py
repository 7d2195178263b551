"""Export a model for deployment: python tools/export_model.py -c CONFIG -o weights=PATH

Writes --output_dir (default output_inference/<config name>): the Paddle inference model
(model.json or model.pdmodel, model.pdiparams) with its post-processing inside the graph, and
infer_cfg.yml (preprocessing, input size, label list, thresholds). Run it with
deploy/python/infer.py --model_dir DIR or ppdet.export.Predictor(DIR).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet.engine.cli import base_parser, load_from_args, run  # noqa: E402


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument(
        "--output_dir",
        default=None,
        help="folder to write (default: output_inference/<config file name>)",
    )
    parser.add_argument(
        "--draw_threshold", type=float, default=0.5, help="score from which deploy draws a box"
    )
    args = parser.parse_args()
    cfg = load_from_args(args)

    from ppdet.config import ConfigError
    from ppdet.export import export_model

    if not cfg.get("weights"):
        raise ConfigError("no weights: pass -o weights=PATH (a file, URL or zoo name)")
    name = os.path.splitext(os.path.basename(args.config))[0]
    output_dir = args.output_dir or os.path.join("output_inference", name)
    out = export_model(cfg, cfg["weights"], output_dir, draw_threshold=args.draw_threshold)
    print(f"exported {cfg['architecture']} to {out}")
    return 0


if __name__ == "__main__":
    run(main)
