"""Time COCO box evaluation of a 5000-image result set (the size of COCO val2017) with each
installed backend (pycocotools, the reference; faster-coco-eval) and check they agree.

python bench/coco_eval_time.py [--images 5000] [--dets 100]

The ground truth and the detections are synthetic but COCO-shaped and seeded: 80 categories,
about 7 objects per image (COCO val2017 has 7.3), ``--dets`` detections per image (jittered
copies of the objects plus random boxes, random scores). Prints the time of
evaluate + accumulate + summarize for each backend and writes the section
``coco_eval`` of BENCHMARK.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from report import machine, write_section  # noqa: E402

from ppdet.evaluation.coco_backend import BACKENDS, coco_backend  # noqa: E402


def synthetic_set(n_images: int, dets_per_image: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """(COCO ground-truth dict, result list) for ``n_images`` 640x480 images."""
    rng = np.random.RandomState(seed)
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480})
        n = rng.poisson(7)
        wh = rng.uniform(8, 300, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([640, 480]) - wh)
        cats = rng.randint(1, 81, n)
        for (x, y), (w, h), c in zip(xy, wh, cats):
            anns.append({
                "id": len(anns) + 1, "image_id": i, "category_id": int(c),
                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                "iscrowd": 0,
            })  # fmt: skip
        m = min(n * 3, dets_per_image)
        src = rng.randint(0, max(n, 1), m)
        for k in range(dets_per_image):
            if k < m and n:
                (x, y), (w, h), c = xy[src[k]], wh[src[k]], cats[src[k]]
                x, y = x + rng.normal(0, 0.1 * w), y + rng.normal(0, 0.1 * h)
                w, h = w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)
            else:
                w, h = rng.uniform(8, 300, 2)
                x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
                c = rng.randint(1, 81)
            results.append({
                "image_id": i, "category_id": int(c), "score": float(rng.uniform()),
                "bbox": [float(x), float(y), float(w), float(h)],
            })  # fmt: skip
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, 81)],
    }
    return gt, results


def time_backend(name: str, gt_path: str, results: list[dict]) -> tuple[float, np.ndarray]:
    """(seconds for load + evaluate + accumulate + summarize, stats [12])."""
    backend = coco_backend(name)
    tic = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = backend.COCO(gt_path)
        coco_dt = coco_gt.loadRes([dict(r) for r in results])
        ev = backend.evaluator(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - tic, np.asarray(ev.stats, np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    gt, results = synthetic_set(args.images, args.dets)
    rows, stats = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = os.path.join(tmp, "gt.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        for name in BACKENDS:
            try:
                seconds, stats[name] = time_backend(name, gt_path, results)
            except ValueError as e:  # not installed
                print(f"{name}: skipped ({e})")
                continue
            rows.append((name, seconds))
            print(f"{name:18s} {seconds:7.1f} s   AP {stats[name][0]:.4f}", flush=True)
    if len(stats) == 2:
        diff = float(np.abs(stats["pycocotools"] - stats["faster_coco_eval"]).max())
        print(f"largest difference of the 12 stats between the backends: {diff:.2e}")
    if args.no_write:
        return 0
    ref = dict(rows).get("pycocotools")
    lines = [
        "## COCO evaluation time (box AP of a 5000-image result set)",
        "",
        f"`python bench/coco_eval_time.py --images {args.images} --dets {args.dets}` on "
        f"{machine()}. Synthetic, seeded COCO-shaped set: {len(gt['annotations'])} objects, "
        f"{len(results)} detections; time = load results + evaluate + accumulate + summarize. "
        "The evaluator picks faster-coco-eval automatically when it is installed "
        "(`PPDET_COCO_EVAL=pycocotools` forces the reference).",
        "",
        "| backend | seconds | vs pycocotools |",
        "|---|---:|---:|",
    ]
    for name, seconds in rows:
        ratio = f"{ref / seconds:.1f}x faster" if ref and name != "pycocotools" else "1.0x"
        lines.append(f"| {name} | {seconds:.1f} | {ratio} |")
    if len(stats) == 2:
        lines += ["", f"The 12 COCO stats of the two backends differ by at most {diff:.1e}."]
    write_section("coco_eval", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
