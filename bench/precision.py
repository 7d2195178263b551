"""Accuracy of bf16 inference against fp32 on a trained, exported model: the config's val set
run through ``ppdet.export.Predictor`` in each precision, scored by the COCO evaluator
tools/eval.py uses, and the two precisions' detections matched image by image. Writes the
section ``precision`` of BENCHMARK.md and bench/results/precision.json.

    make data && python tools/train.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml
    python tools/export_model.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml \\
        -o weights=output/yolov3_mobilenet_v1_demo/model_final --output_dir output_inference/demo
    python bench/precision.py -c configs/yolov3/yolov3_mobilenet_v1_demo.yml \\
        --model_dir output_inference/demo [--threads 2] [--no-write]

``-c`` names the dataset (its ``EvalDataset``, ``metric: COCO``); the model is the exported
folder. Agreement, per image: every fp32 detection (sorted by score) is paired with the unused
bf16 detection of the same class that overlaps it most, if that IoU >= ``MATCH_IOU``; reported
are the matched share (of all fp32 detections, and of those at or above the exported draw
threshold), the largest and the median |score difference| of the pairs, and the bf16
detections at or above the draw threshold that no fp32 one explains.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ppdet.engine.cli import base_parser, load_from_args, run  # noqa: E402

RESULTS = REPO / "bench" / "results" / "precision.json"
PRECISIONS = ("fp32", "bf16")
MATCH_IOU = 0.9


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with boxes [M, 4] (x1y1x2y2, pixels) -> [M]."""
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area - inter, 1e-9)


def match(ref: np.ndarray, other: np.ndarray, min_iou: float = MATCH_IOU) -> list[int]:
    """For each row of ``ref`` [N, 6] (class, score, x1, y1, x2, y2): the index of its partner
    in ``other`` [M, 6] (same class, unused, the largest IoU >= ``min_iou``), or -1. Rows are
    paired in descending score order of ``ref``."""
    partner = [-1] * len(ref)
    used = np.zeros(len(other), bool)
    for i in np.argsort(-ref[:, 1], kind="stable"):
        if not len(other):
            break
        ok = (other[:, 0] == ref[i, 0]) & ~used
        ious = np.where(ok, box_iou(ref[i, 2:], other[:, 2:]), 0.0)
        j = int(np.argmax(ious))
        if ious[j] >= min_iou:
            partner[i] = j
            used[j] = True
    return partner


def agreement(fp32: list[np.ndarray], bf16: list[np.ndarray], threshold: float) -> dict:
    """Matched shares and score differences of bf16 against fp32 (module docstring), over
    images' detections ``fp32[k]``, ``bf16[k]`` [n, 6]."""
    total = matched = shown = shown_matched = extra = 0
    diffs, ious, unmatched = [], [], []
    for ref, other in zip(fp32, bf16):
        partner = match(ref, other)
        back = match(other, ref)  # bf16 detections that no fp32 one explains
        extra += sum(bool(p < 0 and s >= threshold) for p, s in zip(back, other[:, 1]))
        for i, j in enumerate(partner):
            total += 1
            is_shown = bool(ref[i, 1] >= threshold)
            shown += is_shown
            if j < 0:
                unmatched.append(float(ref[i, 1]))
                continue
            matched += 1
            shown_matched += is_shown
            diffs.append(abs(float(ref[i, 1]) - float(other[j, 1])))
            ious.append(float(box_iou(ref[i, 2:], other[j : j + 1, 2:])[0]))
    return {
        "fp32_detections": total,
        "matched": matched / max(total, 1),
        "shown": shown,
        "shown_matched": shown_matched / max(shown, 1),
        "bf16_unexplained_shown": int(extra),
        "max_score_diff": max(diffs, default=0.0),
        "median_score_diff": statistics.median(diffs) if diffs else 0.0,
        "max_unmatched_score": max(unmatched, default=0.0),
        "min_iou": min(ious, default=1.0),
        "median_iou": statistics.median(ious) if ious else 1.0,
    }


def evaluate(predictor, dataset, metric: str) -> tuple[dict, list[np.ndarray], float]:
    """(COCO metrics, detections [n, 6] per record, median inference seconds per batch) of
    ``predictor`` over ``dataset``'s records."""
    from ppdet.evaluation import build_evaluator
    from ppdet.evaluation.coco_eval import split_masks

    records = dataset.records
    results = predictor([r["im_file"] for r in records])
    if predictor.skipped:
        raise SystemExit(f"unreadable images: {predictor.skipped[:3]}")
    evaluator = build_evaluator(metric, dataset)
    evaluator.reset()
    for res in results:
        record = records[res["im_id"]]
        bbox = res["bbox"]
        masks = {}
        if "mask" in res and getattr(evaluator, "supports_masks", False):
            masks["mask"] = split_masks([res["mask"]], [len(bbox)])
        im_id = np.asarray(record["im_id"]).reshape(-1)
        evaluator.update(im_id, bbox, np.array([len(bbox)]), **masks)
    metrics = evaluator.accumulate()
    return metrics, [r["bbox"] for r in results], statistics.median(predictor.timings["inference"])


def table(record: dict) -> str:
    """The BENCHMARK.md section."""
    a = record["agreement"]
    thr = record["draw_threshold"]
    lines = [
        "## Inference precision: bf16 against fp32 (trained model)",
        "",
        f"Machine: {record['machine']}; Paddle's bf16 query: {record['bf16_support']}. "
        f"Model: {record['model']} ({record['config']}), exported, run by "
        f"`ppdet.export.Predictor` (Paddle Inference, oneDNN, {record['threads']} threads) in "
        f"each precision over the val set ({record['images']} images) and scored by the COCO "
        'evaluator tools/eval.py uses. bf16: `precision="bf16"` (`--precision bf16`), '
        "oneDNN's `enable_mkldnn_bfloat16()`. Speed: section `latency` (this 192 px model is "
        "too small to time on a shared machine).",
        "",
        "| precision | AP@[.5:.95] | mAP@0.5 | detections |",
        "|---|---|---|---|",
    ]
    for p in PRECISIONS:
        m = record[p]
        lines.append(f"| {p} | {m['AP']:.4f} | {m['AP50']:.4f} | {m['detections']} |")
    lines += [
        "",
        f"Agreement, image by image (each fp32 detection paired with the bf16 one of the same "
        f"class that overlaps it most, IoU >= {MATCH_IOU}): {a['matched']:.1%} of the "
        f"{a['fp32_detections']} fp32 detections matched, {a['shown_matched']:.1%} of the "
        f"{a['shown']} at or above the draw threshold {thr}; {a['bf16_unexplained_shown']} bf16 "
        f"detections >= {thr} without an fp32 partner. Matched pairs: |score difference| max "
        f"{a['max_score_diff']:.4f}, median {a['median_score_diff']:.5f}; IoU min "
        f"{a['min_iou']:.4f}, median {a['median_iou']:.4f}. The highest score of an unmatched fp32 "
        f"detection: {a['max_unmatched_score']:.4f}.",
        "",
        f"Command ({record['date']}, load {record['load']:.1f}):",
        "",
        "```bash",
        *record["commands"],
        "```",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="folder of tools/export_model.py")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--trained_by", default="", help="the command that trained the weights (for the record)"
    )
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARK.md")
    args = parser.parse_args()
    cfg = load_from_args(args)

    from report import machine, write_section

    from ppdet.atomic_io import atomic_write_text
    from ppdet.data.loader import build_dataset
    from ppdet.export import Predictor
    from ppdet.export.paddle_backend import cpu_bf16_support

    dataset = build_dataset(cfg, "eval")
    metric = cfg.get("metric", "COCO")
    record = {"images": len(dataset.records), "threads": args.threads}
    detections = {}
    for precision in PRECISIONS:
        predictor = Predictor(args.model_dir, threads=args.threads, precision=precision)
        if predictor.session.precision != precision:
            raise SystemExit(f"precision {precision} cannot run here (see the warning above)")
        print(f"{precision}:", flush=True)
        metrics, dets, seconds = evaluate(predictor, dataset, metric)
        detections[precision] = dets
        record[precision] = {
            "AP": metrics["AP"],
            "AP50": metrics["AP50"],
            "detections": int(sum(len(d) for d in dets)),
            "seconds": seconds,
        }
    supported, fast = cpu_bf16_support()
    config = os.path.relpath(os.path.abspath(args.config), REPO)
    record.update(
        agreement=agreement(detections["fp32"], detections["bf16"], predictor.draw_threshold),
        draw_threshold=predictor.draw_threshold,
        model=predictor.info.architecture,
        config=config,
        machine=machine(),
        bf16_support=f"supports_bfloat16 {supported}, fast_performance {fast}",
        date=time.strftime("%Y-%m-%d"),
        load=os.getloadavg()[0],
        python=platform.python_version(),
        commands=[
            *([args.trained_by] if args.trained_by else []),
            f"python tools/export_model.py -c {config} -o weights={predictor.info.weights} "
            f"--output_dir {args.model_dir}",
            " ".join(
                [
                    f"python bench/precision.py -c {config}",
                    *(["-o", *args.opt] if args.opt else []),
                    f"--model_dir {args.model_dir} --threads {args.threads}",
                ]
            ),
        ],
    )
    text = table(record)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS, json.dumps(record, indent=1, sort_keys=True) + "\n")
        write_section("precision", text)
    return 0


if __name__ == "__main__":
    run(main)
