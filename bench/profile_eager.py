"""Where an eager eval forward spends its time: Faster R-CNN R50-FPN (800 x 1216) and YOLOv3
DarkNet53 (608 x 608), batch 1, random weights, ``model.predict`` (forward + post-process).

Prints the median wall time of ``--repeat`` runs after one warm-up, then the cProfile of one
more run: the functions with the most cumulative time (``--top``), and the time spent outside
the network layers' own compute (the ``ppdet`` Python code below the heads). The score
thresholds can be lowered (``--keep-all``) so the post-process handles 100 detections per
image, as a trained model does, instead of the few an untrained one passes.

    MKL_DEBUG_CPU_TYPE=5 .venv/bin/python bench/profile_eager.py [--models faster_rcnn yolov3]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paddle  # noqa: E402

import ppdet  # noqa: E402

# (config, input (h, w), overrides that make an untrained model keep 100 detections per image)
MODELS = {
    "faster_rcnn": (
        "configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yml",
        (800, 1216),
        ["BBoxPostProcess.nms.score_threshold=0.0"],
    ),
    "yolov3": (
        "configs/yolov3/yolov3_darknet53_270e_coco.yml",
        (608, 608),
        ["BBoxPostProcess.nms.score_threshold=0.0", "BBoxPostProcess.decode.conf_thresh=0.0"],
    ),
}


def batch_of(size: tuple[int, int]) -> dict[str, paddle.Tensor]:
    """One random image of ``size`` (h, w), as if resized by 2 from its original."""
    h, w = size
    image = np.random.default_rng(0).normal(size=(1, 3, h, w)).astype("float32")
    return {
        "image": paddle.to_tensor(image),
        "im_shape": paddle.to_tensor([[h, w]], "float32"),
        "scale_factor": paddle.to_tensor([[2.0, 2.0]], "float32"),
    }


def profile(name: str, repeat: int, top: int, keep_all: bool) -> None:
    config, size, overrides = MODELS[name]
    paddle.seed(0)
    model = ppdet.build_model(ppdet.load_config(str(REPO / config), overrides if keep_all else []))
    model.eval()
    batch = batch_of(size)
    out = model.predict(batch)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = model.predict(batch)
        times.append(time.perf_counter() - start)
    print(
        f"{name} {size[0]}x{size[1]}: median {statistics.median(times):.3f} s over {repeat} runs "
        f"({out['bbox'].shape[0]} detections)"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    model.predict(batch)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(top)
    print(stream.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--keep-all", action="store_true", help="score thresholds 0")
    args = parser.parse_args()
    for name in args.models:
        profile(name, args.repeat, args.top, args.keep_all)


if __name__ == "__main__":
    main()
