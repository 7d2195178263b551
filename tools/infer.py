"""Detect objects in images: python tools/infer.py -c CONFIG -o weights=PATH --infer_img x.jpg

Writes annotated images and a JSON of all detections (bbox.json) into --output_dir. No dataset
is needed (class names come with the weights, or from the config). Images that cannot be read
(corrupt, truncated, too large, not images) are skipped with a warning each; the exit status is
0 when at least one image was processed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppdet.engine.cli import base_parser, load_from_args, run  # noqa: E402


def main() -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--infer_img", default=None, help="one image file")
    parser.add_argument("--infer_dir", default=None, help="a folder of images")
    parser.add_argument(
        "--draw_threshold", type=float, default=0.5, help="score needed to draw a box"
    )
    parser.add_argument(
        "--output_dir", default="output", help="where drawn images and bbox.json go"
    )
    args = parser.parse_args()
    cfg = load_from_args(args)

    from ppdet.config import ConfigError
    from ppdet.data import DataError
    from ppdet.engine.predictor import Predictor, list_images, save_visualizations
    from ppdet.visualize import write_detections_json

    if not cfg.get("weights"):
        raise ConfigError("no weights: pass -o weights=PATH (a file, URL or zoo name)")
    images = list_images(args.infer_img, args.infer_dir)
    predictor = Predictor(cfg, cfg["weights"])
    results, label_list = predictor.predict(images)
    if not results:
        raise DataError(f"none of the {len(images)} images could be read (see the warnings above)")
    drawn = save_visualizations(
        results, label_list, args.output_dir, args.draw_threshold, predictor.max_pixels
    )
    json_path = os.path.join(args.output_dir, "bbox.json")
    write_detections_json(json_path, results, label_list)
    total = sum(int((r["bbox"][:, 1] >= args.draw_threshold).sum()) for r in results)
    skipped = f" ({len(predictor.skipped)} skipped: unreadable)" if predictor.skipped else ""
    print(
        f"{len(results)} images{skipped}, {total} detections with score >= "
        f"{args.draw_threshold}; drawn images in {args.output_dir}/ ({len(drawn)} files), "
        f"all detections in {json_path}"
    )
    return 0


if __name__ == "__main__":
    run(main)
