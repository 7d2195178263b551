"""Training step time per architecture at batch 1, ours next to PaddleDetection 2.6's.

One step = forward with the losses, backward, Momentum update, on one fixed random image
with 3 ground-truth boxes (320x320; SSD 300x300) and random initial weights. Both models are
built from our ``configs/_base_/`` files (2.x keys and values); the reference package
(``paddledet==2.6.0`` in the venv of ``bench/oracle.py``, ``/tmp/refvenv``) runs in its own
interpreter on the same inputs, fed the ground truth in its own format (per-image lists for
RetinaNet and the R-CNNs, normalised boxes for SSD, ``Gt2YoloTarget`` targets for YOLOv3).
Median of ``--repeat`` steps after one warm-up step; both sides run one after the other on
the same machine, with the same threads. Without the reference venv the table has our times
only and says so. Writes the ``train_step`` section of BENCHMARK.md.

    MKL_DEBUG_CPU_TYPE=5 .venv/bin/python bench/train_step.py [--repeat 5] [--only YOLOv3-DarkNet53]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402  (also puts the repository on sys.path)
import paddle  # noqa: E402
from report import machine, write_section  # noqa: E402

import ppdet  # noqa: E402

REPO = oracle.REPO
# label, _base_ config, ground-truth format of the reference, input size
ARCHS = (
    ("YOLOv3-DarkNet53", "yolov3_darknet53", "yolo", 320),
    ("YOLOv3-MobileNetV1", "yolov3_mobilenet_v1", "yolo", 320),
    ("SSD-MobileNetV1", "ssd_mobilenet_v1_300", "ssd", 300),
    ("SSD-VGG16", "ssd_vgg16_300", "ssd", 300),
    ("RetinaNet-R50-FPN", "retinanet_r50_fpn", "lists", 320),
    ("FasterRCNN-R50-FPN", "faster_rcnn_r50_fpn", "lists", 320),
    ("CascadeRCNN-R50-FPN", "cascade_rcnn_r50_fpn", "lists", 320),
    ("MaskRCNN-R50-FPN", "mask_rcnn_r50_fpn", "lists", 320),
)
BOXES = np.array([[30, 40, 150, 200], [160, 20, 300, 150], [60, 220, 120, 290]], "float32")
CLASSES = np.array([[3], [7], [0]], "int32")

# Runs under the reference interpreter: argv = config, work dir, gt format, warm-up, repeat.
REFERENCE_SCRIPT = (
    "import json, pickle, time\n"
    + oracle.SCRIPT_IMPORTS
    + oracle.CONCAT_0D_PATCH
    + r"""
# 2.6.0's SSD hard-negative mining compares int64 with float32, which paddle 3 refuses
_lt = paddle.Tensor.__lt__
def _promoting_lt(x, y):
    if isinstance(y, paddle.Tensor) and x.dtype != y.dtype and not x.is_floating_point():
        x = x.astype(y.dtype)
    return _lt(x, y)
paddle.Tensor.__lt__ = _promoting_lt

config, out_dir, kind = sys.argv[1], sys.argv[2], sys.argv[3]
warmup, repeat = int(sys.argv[4]), int(sys.argv[5])
cfg = load_config(config)
paddle.seed(0)
model = create(cfg.architecture)
inputs = dict(np.load(f"{out_dir}/inputs.npz"))
batch = {k: paddle.to_tensor(inputs[k]) for k in ("image", "im_shape", "scale_factor")}
size = inputs["image"].shape[2]
boxes, classes = inputs["gt_bbox"], inputs["gt_class"]  # [1, M, 4] pixels, [1, M, 1]
if kind == "lists":
    batch["gt_bbox"] = [paddle.to_tensor(boxes[0])]
    batch["gt_class"] = [paddle.to_tensor(classes[0])]
    batch["gt_poly"] = [[[b[[0, 1, 2, 1, 2, 3, 0, 3]].astype("float32")] for b in boxes[0]]]
elif kind == "ssd":
    batch["gt_bbox"] = paddle.to_tensor(boxes / size)
    batch["gt_class"] = paddle.to_tensor(classes[..., 0])
else:  # yolo: the targets 2.x's reader makes
    from ppdet.data.transform.batch_operators import Gt2YoloTarget
    head = cfg["YOLOv3Head"]
    x1, y1, x2, y2 = (boxes[..., i].astype("float64") for i in range(4))
    norm = np.stack([(x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size,
                     (y2 - y1) / size], -1).astype("float32")
    samples = [{"image": inputs["image"][0], "gt_bbox": norm[0], "gt_class": classes[0],
                "gt_score": np.ones((len(norm[0]), 1), "float32")}]
    samples = Gt2YoloTarget(head["anchors"], head["anchor_masks"], [32, 16, 8],
                            cfg.num_classes)(samples)
    batch["gt_bbox"] = paddle.to_tensor(norm)
    for i in range(3):
        batch[f"target{i}"] = paddle.to_tensor(samples[0][f"target{i}"][None])
opt = paddle.optimizer.Momentum(1e-4, momentum=0.9, parameters=model.parameters())
model.train()
times = []
for _ in range(warmup + repeat):
    start = time.perf_counter()
    losses = model(batch)
    losses["loss"].backward()
    opt.step()
    opt.clear_grad()
    times.append(time.perf_counter() - start)
np.savez(f"{out_dir}/reference.npz", times=np.array(times[warmup:]))
print("reference:", json.dumps({"median_s": float(np.median(times[warmup:]))}))
"""
)


def inputs_for(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    scale = size / 320.0
    return {
        "image": rng.normal(0, 1, (1, 3, size, size)).astype("float32"),
        "im_shape": np.array([[size, size]], "float32"),
        "scale_factor": np.array([[1.0, 1.0]], "float32"),
        "gt_bbox": (BOXES * scale)[None],
        "gt_class": CLASSES[None],
    }


def our_batch(inputs: dict[str, np.ndarray], with_polys: bool) -> dict:
    batch = {k: paddle.to_tensor(v) for k, v in inputs.items()}
    batch["pad_gt_mask"] = paddle.ones([1, len(BOXES), 1], "float32")
    batch["gt_score"] = paddle.ones([1, len(BOXES), 1], "float32")
    batch["is_crowd"] = paddle.zeros([1, len(BOXES), 1], "int32")
    if with_polys:  # each box as a rectangle polygon
        rect = [0, 1, 2, 1, 2, 3, 0, 3]
        batch["gt_poly"] = [[[b[rect].astype("float32")] for b in inputs["gt_bbox"][0]]]
    return batch


def our_step_times(base: str, size: int, warmup: int, repeat: int) -> list[float]:
    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{base}.yml"))
    paddle.seed(0)
    model = ppdet.build_model(cfg)
    batch = our_batch(inputs_for(size), with_polys="mask" in base)
    opt = paddle.optimizer.Momentum(1e-4, momentum=0.9, parameters=model.parameters())
    model.train()
    times = []
    for _ in range(warmup + repeat):
        start = time.perf_counter()
        losses = model.loss(model(batch), batch)
        losses["loss"].backward()
        opt.step()
        opt.clear_grad()
        times.append(time.perf_counter() - start)
    return times[warmup:]


def reference_step_times(
    label: str,
    base: str,
    kind: str,
    size: int,
    warmup: int,
    repeat: int,
    ref_python: str,
    work: Path,
) -> list[float]:
    work.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "configs" / "_base_").glob("*.yml"):
        text = path.read_text()
        text = re.sub(r"YOLOv3FPN:\n  base_channels: \d+\n\n", "", text)  # our one extra key
        (work / path.name).write_text(text)
    np.savez(work / "inputs.npz", **inputs_for(size))
    args = [f"{base}.yml", ".", kind, str(warmup), str(repeat)]
    ref = oracle.run_reference(label, work, REFERENCE_SCRIPT, args, ref_python)
    return ref["times"].tolist()


def _nice() -> str:
    """``nice -n N `` when this process runs niced (a shared machine), else ""."""
    level = os.nice(0)
    return f"nice -n {level} " if level else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=[a[0] for a in ARCHS])
    parser.add_argument("--ref-python", default=oracle.REF_PYTHON)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARK.md")
    args = parser.parse_args()
    have_ref = os.path.isfile(args.ref_python)
    if not have_ref:
        print(f"no reference interpreter at {args.ref_python}: our times only")
    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ppdet_step_") as tmp:
        for label, base, kind, size in ARCHS:
            if args.only and label not in args.only:
                continue
            ref = None
            if have_ref:
                times = reference_step_times(
                    label, base, kind, size, 1, args.repeat, args.ref_python, Path(tmp) / label
                )
                ref = statistics.median(times)
            ours = statistics.median(our_step_times(base, size, 1, args.repeat))
            ratio = f"{ours / ref:.2f}" if ref else "-"
            ref_text = f"{ref * 1000:.0f}" if ref else "n/a"
            print(f"{label}: ours {ours * 1000:.0f} ms, reference {ref_text} ms", flush=True)
            rows.append(f"| {label} | {size}x{size} | {ours * 1000:.0f} | {ref_text} | {ratio} |")
        shutil.rmtree(tmp, ignore_errors=True)
    note = (
        f"Reference: `paddledet==2.6.0` in `{args.ref_python}` (see bench/oracle.py)."
        if have_ref
        else f"The reference venv ({args.ref_python}) was not found: reference column empty."
    )
    text = f"""## Training step time per architecture (batch 1, CPU)

`{_nice()}MKL_DEBUG_CPU_TYPE=5 python bench/train_step.py --repeat {args.repeat}` on {machine()}; load
average of the (shared) machine {load[0]:.1f} at the start. One step = forward with losses,
backward, Momentum update; one random image, 3 boxes, random weights, median of
{args.repeat} steps after a warm-up. {note}

| architecture | input | ours (ms) | PaddleDetection 2.6 (ms) | ours / 2.6 |
|---|---|---:|---:|---:|
{chr(10).join(rows)}
"""
    if not args.no_write and rows:
        write_section("train_step", text)
        print("wrote the train_step section of BENCHMARK.md")


if __name__ == "__main__":
    main()
