"""Forward time of every backbone at its standard detection input, eager and exported.

For each backbone: parameters, GFLOPs (2 x multiply-adds of the convolutions and linear
layers, counted with forward hooks at the given input), the median eager forward time
(``paddle.no_grad``, batch 1) and the median time of the same network exported with
``paddle.jit.save`` and run by Paddle Inference on CPU (oneDNN on, 2 threads). Writes the table
into BENCHMARK.md between its own markers (other benchmarks keep their sections).

    MKL_DEBUG_CPU_TYPE=5 .venv/bin/python bench/backbones.py [--only ResNet50 DarkNet53] [--repeat 5]

Standard inputs: R-CNN / RetinaNet backbones 800x1344 (short side 800, padded to /32), YOLOv3
608x608, SSD 300x300 (VGG16, MobileNetV1-SSD) and SSDLite 320x320.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from report import write_section  # noqa: E402  (bench/report.py)

import ppdet.modeling  # noqa: E402, F401  (registers the backbones)
from ppdet.config.registry import lookup  # noqa: E402

RCNN, YOLO = (800, 1344), (608, 608)
# label, registered class, constructor kwargs, input (h, w)
BACKBONES = [
    ("ResNet18", "ResNet", {"depth": 18}, RCNN),
    ("ResNet34", "ResNet", {"depth": 34}, RCNN),
    ("ResNet50", "ResNet", {"depth": 50}, RCNN),
    ("ResNet50-vd", "ResNet", {"depth": 50, "variant": "d"}, RCNN),
    ("ResNet101", "ResNet", {"depth": 101}, RCNN),
    ("ResNet101-vd", "ResNet", {"depth": 101, "variant": "d"}, RCNN),
    ("ResNet152", "ResNet", {"depth": 152}, RCNN),
    (
        "ResNeXt101-vd-64x4d",
        "ResNet",
        {"depth": 101, "variant": "d", "groups": 64, "base_width": 4},
        RCNN,
    ),
    ("SENet154-vd", "SENet", {"depth": 152, "variant": "d", "groups": 64, "base_width": 4}, RCNN),
    ("DarkNet53", "DarkNet", {"depth": 53}, YOLO),
    ("MobileNetV1", "MobileNet", {}, YOLO),
    (
        "MobileNetV1-SSD",
        "MobileNet",
        {"with_extra_blocks": True, "feature_maps": [11, 13, 14, 15, 16, 17]},
        (300, 300),
    ),
    (
        "MobileNetV3-large",
        "MobileNetV3",
        {"model_name": "large", "feature_maps": [7, 13, 16]},
        YOLO,
    ),
    ("MobileNetV3-small", "MobileNetV3", {"model_name": "small", "feature_maps": [4, 9, 12]}, YOLO),
    ("VGG16-SSD", "VGG", {"depth": 16}, (300, 300)),
]


def count_flops(model: paddle.nn.Layer, shape: list[int]) -> float:
    """GFLOPs (2 x multiply-adds) of the Conv2D and Linear layers for one input of ``shape``."""
    macs = []

    def conv_hook(layer, inputs, output):
        kh, kw = layer.weight.shape[2:]
        macs.append(int(np.prod(output.shape)) * layer.weight.shape[1] * kh * kw)

    def linear_hook(layer, inputs, output):
        macs.append(int(np.prod(output.shape)) * layer.weight.shape[0])

    hooks = []
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.Conv2D):
            hooks.append(layer.register_forward_post_hook(conv_hook))
        elif isinstance(layer, paddle.nn.Linear):
            hooks.append(layer.register_forward_post_hook(linear_hook))
    with paddle.no_grad():
        model(paddle.zeros(shape))
    for h in hooks:
        h.remove()
    return 2 * sum(macs) / 1e9


def time_eager(model: paddle.nn.Layer, x: paddle.Tensor, repeat: int) -> float:
    with paddle.no_grad():
        model(x)  # warm-up
        times = []
        for _ in range(repeat):
            tic = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - tic)
    return statistics.median(times)


def time_exported(model: paddle.nn.Layer, x: np.ndarray, repeat: int, threads: int) -> float:
    from paddle import inference

    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "backbone")
        spec = [paddle.static.InputSpec(list(x.shape), "float32", "image")]
        paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), prefix)
        model_file = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
        config = inference.Config(model_file, prefix + ".pdiparams")
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        handle = predictor.get_input_handle(predictor.get_input_names()[0])

        def run():
            handle.copy_from_cpu(x)
            predictor.run()

        run()  # warm-up (oneDNN primitive creation)
        times = []
        for _ in range(repeat):
            tic = time.perf_counter()
            run()
            times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-export", action="store_true", help="eager only")
    parser.add_argument("--out", default=os.path.join(REPO, "BENCHMARK.md"))
    args = parser.parse_args()
    paddle.set_device("cpu")

    rows = []
    for label, cls, kwargs, (h, w) in BACKBONES:
        if args.only and label not in args.only:
            continue
        paddle.seed(0)
        model = lookup(cls, "backbone")(**kwargs)
        model.eval()
        params = sum(int(np.prod(p.shape)) for p in model.parameters()) / 1e6
        gflops = count_flops(model, [1, 3, h, w])
        x = np.random.RandomState(0).rand(1, 3, h, w).astype("float32")
        eager = time_eager(model, paddle.to_tensor(x), args.repeat)
        exported = None if args.no_export else time_exported(model, x, args.repeat, args.threads)
        rows.append((label, f"{h}x{w}", params, gflops, eager, exported))
        shown = f"{exported * 1000:.0f} ms" if exported else "-"
        print(
            f"{label:22s} {h}x{w:<5d} {params:7.1f} M  {gflops:7.1f} GFLOPs  eager {eager * 1000:7.0f} ms  "
            f"exported {shown}",
            flush=True,
        )

    cpu = platform.processor() or platform.machine()
    lines = [
        "## Backbones: forward time per image (batch 1, CPU)",
        "",
        f"`MKL_DEBUG_CPU_TYPE=5 python bench/backbones.py --repeat {args.repeat}` on {os.cpu_count()} cores "
        f"({cpu}), {args.threads} threads, paddlepaddle {paddle.__version__}. Median of {args.repeat} runs "
        "after one warm-up. Exported = `paddle.jit.save` + Paddle Inference with oneDNN. "
        "GFLOPs = 2 x multiply-adds of convolutions and linear layers.",
        "",
        "| backbone | input | params (M) | GFLOPs | eager (ms) | exported (ms) | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, size, params, gflops, eager, exported in rows:
        exp = f"{exported * 1000:.0f}" if exported else "-"
        up = f"{eager / exported:.2f}x" if exported else "-"
        lines.append(
            f"| {label} | {size} | {params:.1f} | {gflops:.1f} | {eager * 1000:.0f} | {exp} | {up} |"
        )
    if not args.only:
        write_section("backbones", "\n".join(lines), args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
