"""Latency of every architecture on the CPU: eager, exported Paddle Inference (oneDNN on and
off), ONNX Runtime; peak memory and GFLOPs. Writes the section ``latency`` of BENCHMARK.md.

    MKL_DEBUG_CPU_TYPE=5 python bench/latency.py [--arch yolov3_mobilenet_v1 faster_rcnn_r50_fpn]
        [--repeats 5] [--warmup 1] [--threads 2]
        [--modes eager paddle_mkldnn paddle onnx reference] [--ref-python /tmp/refvenv/bin/python]

Each architecture runs at its standard input size (YOLOv3 608x608, SSD 300x300, the FPN
detectors 800x1216: a 4:3 photo resized to short side 800, padded to stride 32) on one fixed
image, batch 1, ``--threads`` threads; the figure is the median of ``--repeats`` runs after
``--warmup`` runs, of the model call only (preprocessed tensors in, detections out: backbone,
heads and the post-process inside the graph). Weights are seeded random values of the real
architecture (no trained weights are reachable offline): the compute is the real one, and the
NMS sees as many candidates as the thresholds let through. Every (architecture, mode) runs in
its own process, so "peak RSS" is that mode's own high-water mark (model + runtime).
GFLOPs = 2 x the multiply-adds counted by ``paddle.flops`` (conv, linear, norm layers).
``reference``: when PaddleDetection 2.6 is installed in its own venv (``bench/oracle.py`` says
how), its eager eval forward on the same weights (saved from ours: 2.x parameter names) and
input; eager runs with Paddle's default flags in both. Threads: ``OMP_NUM_THREADS`` and Paddle
Inference's math-library threads set to ``--threads``; onnxruntime's intra-op threads too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# name -> (config, input size h, w, the configs/_base_ model file the reference builds from)
ARCHS = {
    "yolov3_mobilenet_v1": (
        "configs/yolov3/yolov3_mobilenet_v1_270e_coco.yml",
        608,
        608,
        "yolov3_mobilenet_v1",
    ),
    "yolov3_darknet53": (
        "configs/yolov3/yolov3_darknet53_270e_coco.yml",
        608,
        608,
        "yolov3_darknet53",
    ),
    "ssd_mobilenet_v1": (
        "configs/ssd/ssd_mobilenet_v1_300_120e_voc.yml",
        300,
        300,
        "ssd_mobilenet_v1_300",
    ),
    "retinanet_r50_fpn": (
        "configs/retinanet/retinanet_r50_fpn_1x_coco.yml",
        800,
        1216,
        "retinanet_r50_fpn",
    ),
    "faster_rcnn_r50_fpn": (
        "configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yml",
        800,
        1216,
        "faster_rcnn_r50_fpn",
    ),
    "mask_rcnn_r50_fpn": (
        "configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml",
        800,
        1216,
        "mask_rcnn_r50_fpn",
    ),
    "cascade_rcnn_r50_fpn": (
        "configs/cascade_rcnn/cascade_rcnn_r50_fpn_1x_coco.yml",
        800,
        1216,
        "cascade_rcnn_r50_fpn",
    ),
    "cascade_mask_rcnn_r50_fpn": (
        "configs/cascade_rcnn/cascade_mask_rcnn_r50_fpn_1x_coco.yml",
        800,
        1216,
        "cascade_mask_rcnn_r50_fpn",
    ),
    "ssd_vgg16": ("configs/ssd/ssd_vgg16_300_240e_voc.yml", 300, 300, "ssd_vgg16_300"),
    "efficientdet_d0": ("configs/efficientdet/efficientdet_d0_coco.yml", 512, 512, None),
}
# Results of every run, per architecture: a run of some architectures keeps the others' rows.
RESULTS = REPO / "bench" / "results" / "latency.json"
MACHINE = "_machine"  # the results' record of the CPU's measured sgemm peak
MODES = ("eager", "paddle_mkldnn", "paddle", "onnx", "reference")
REF_PYTHON = "/tmp/refvenv/bin/python"  # bench/oracle.py: how to create it

# Runs under the reference interpreter (paddledet 2.6): argv = config, weights, inputs.npz,
# warmup, repeats. Eager eval forward of 2.x's model (its post-process included).
REFERENCE_SCRIPT = r"""
import json, statistics, sys, time
import numpy as np
import paddle
from ppdet.core.workspace import create, load_config
_concat = paddle.concat
def _concat_0d(x, axis=0, name=None):  # 2.6 concatenates 0-d RoI counts (Paddle 3)
    if isinstance(x, (list, tuple)) and x and all(getattr(t, "ndim", 1) == 0 for t in x):
        x = [t.reshape([1]) for t in x]
    return _concat(x, axis=axis, name=name)
paddle.concat = _concat_0d
config, weights, inputs, warmup, repeats = sys.argv[1:6]
cfg = load_config(config)
model = create(cfg.architecture)
state = paddle.load(weights)
missing = [k for k in model.state_dict() if k not in state]
if missing:
    sys.exit(f"{len(missing)} parameters not in {weights}, e.g. {missing[:3]}")
model.set_state_dict(state)
model.eval()
data = np.load(inputs)
batch = {k: paddle.to_tensor(data[k]) for k in ("image", "im_shape", "scale_factor")}
times = []
with paddle.no_grad():
    for i in range(int(warmup) + int(repeats)):
        start = time.perf_counter()
        out = model(batch)
        num = int(out["bbox_num"].numpy().sum())
        times.append(time.perf_counter() - start)
seconds = statistics.median(times[int(warmup):])
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
print(json.dumps({"seconds": seconds, "detections": num, "peak_rss_mb": int(status[0]) / 1024}))
"""
DEFAULT_ARCHS = ("yolov3_mobilenet_v1", "ssd_mobilenet_v1", "faster_rcnn_r50_fpn")


def fixed_inputs(h: int, w: int) -> dict:
    """One normalised image [1, 3, h, w] (seeded smooth noise: blobs at several scales, like a
    photo's spectrum), im_shape and scale_factor (a 4:3 original of 600 px height)."""
    import numpy as np

    rng = np.random.default_rng(0)
    img = np.zeros((3, h, w), "float32")
    for cells in (4, 16, 64):
        small = rng.normal(size=(3, cells, cells)).astype("float32")
        ys = np.arange(h) * cells // h
        xs = np.arange(w) * cells // w
        img += small[:, ys][:, :, xs] / cells**0.25
    scale = h / 600.0
    return {
        "image": img[None],
        "im_shape": np.array([[h, w]], "float32"),
        "scale_factor": np.array([[scale, scale]], "float32"),
    }


def build(arch: str):
    import paddle

    import ppdet

    config = ARCHS[arch][0]
    cfg = ppdet.load_config(str(REPO / config))
    paddle.seed(0)
    model = ppdet.build_model(cfg)
    model.eval()
    return cfg, model


def timed(run, warmup: int, repeats: int) -> tuple[float, int]:
    """(median seconds of ``repeats`` calls after ``warmup``, detections of the last call)."""
    out = None
    for _ in range(warmup):
        out = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), int(out)


def child(mode: str, arch: str, model_dir: str, warmup: int, repeats: int, threads: int) -> dict:
    """Measure one (architecture, mode) in this process; returns the result record."""
    import paddle

    _, h, w, _ = ARCHS[arch]
    feeds = fixed_inputs(h, w)
    if mode == "eager":
        paddle.set_device("cpu")
        _, model = build(arch)
        batch = {k: paddle.to_tensor(v) for k, v in feeds.items()}
        seconds, dets = timed(lambda: model.predict(batch)["bbox"].shape[0], warmup, repeats)
    elif mode.startswith("paddle"):
        from ppdet.export.paddle_backend import PaddleSession

        # the session the Predictor uses: the same passes, workarounds and thread settings
        info = json.loads((Path(model_dir) / "io.json").read_text())
        session = PaddleSession(
            Path(model_dir) / info["model_file"],
            Path(model_dir) / "model.pdiparams",
            threads=threads,
            device="cpu",
            use_onednn=mode == "paddle_mkldnn",
        )

        def run():
            bbox = session._run(feeds)[0]  # no fallback: a failing oneDNN run is reported
            return bbox.shape[0]

        seconds, dets = timed(run, warmup, repeats)
    else:
        from ppdet.export import onnx_backend

        session = onnx_backend.OnnxSession(Path(model_dir) / "model.onnx", threads=threads)
        seconds, dets = timed(lambda: session.run(feeds)[0].shape[0], warmup, repeats)
    return {"seconds": seconds, "detections": dets, "peak_rss_mb": peak_rss_mb()}


def sgemm_peak(threads: int, n: int = 4096, repeats: int = 10) -> float:
    """GFLOP/s of Paddle's float32 matrix product (MKL) of two n x n matrices on ``threads``
    threads, the best of ``repeats``: the practical compute bound of this CPU for dense
    float32 layers (conv kernels reach at most about this)."""
    import paddle

    paddle.set_device("cpu")
    a, b = paddle.randn([n, n]), paddle.randn([n, n])
    paddle.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        paddle.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the memory of the
    parent it was forked from)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024


def prepare(arch: str, out: Path) -> dict:
    """Export ``arch`` (seeded weights) to ``out``, try the ONNX conversion, count GFLOPs;
    save the weights, input and base config the reference runs from."""
    import numpy as np
    import paddle

    from ppdet.export import onnx_backend
    from ppdet.export.exporter import export_model

    cfg, model = build(arch)
    _, h, w, _ = ARCHS[arch]
    export_model(cfg, "", out, model=model)
    model_file = "model.json" if (out / "model.json").is_file() else "model.pdmodel"
    (out / "io.json").write_text(json.dumps({"model_file": model_file}))
    paddle.save(model.state_dict(), str(out / "weights.pdparams"))  # for the reference
    np.savez(out / "inputs.npz", **fixed_inputs(h, w))
    if ARCHS[arch][3]:  # PaddleDetection 2.6 has this architecture
        # the model's base config and the bases it names (_BASE_ paths are relative)
        for path in (REPO / "configs" / "_base_").glob("*.yml"):
            text = path.read_text(encoding="utf-8")
            # our one key 2.x does not know (as in bench/compare_with_paddledet.py)
            text = re.sub(r"YOLOv3FPN:\n  base_channels: 512\n\n", "", text)
            name = "reference.yml" if path.stem == ARCHS[arch][3] else path.name
            (out / name).write_text(text, encoding="utf-8")
    onnx_error = ""
    try:
        onnx_backend.convert(out)
    except onnx_backend.OnnxError as e:
        onnx_error = str(e).split(": ", 1)[-1]
    feeds = {k: paddle.to_tensor(v) for k, v in fixed_inputs(h, w).items()}

    class Network(paddle.nn.Layer):  # paddle.flops calls the layer on one tensor
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, image):
            return self.model({**feeds, "image": image})

    with paddle.no_grad():
        macs = paddle.flops(Network(), [1, 3, h, w], print_detail=False)
    return {"gflops": 2 * macs / 1e9, "onnx_error": onnx_error}


def run_child(mode, arch, model_dir, args) -> dict:
    """Run one mode in its own process; {"error": last stderr line} if it fails."""
    env = dict(os.environ)
    if mode == "reference":
        env.pop("PYTHONPATH", None)  # the reference's own ppdet, not ours
        files = ["reference.yml", "weights.pdparams", "inputs.npz"]
        cmd = [args.ref_python, "-c", REFERENCE_SCRIPT, *files, str(args.warmup)]
        cmd.append(str(args.repeats))
    else:
        cmd = [sys.executable, __file__, "--child", mode, arch, str(model_dir)]
        cmd += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
        cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=model_dir)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:200]}
    return json.loads(lines[-1])


def table(results: dict) -> str:
    """The BENCHMARK.md section from the stored results of every architecture."""
    import paddle
    from report import machine

    try:
        import onnxruntime
        import paddle2onnx

        onnx_versions = (
            f"paddle2onnx {paddle2onnx.__version__}, onnxruntime {onnxruntime.__version__}"
        )
    except ImportError:
        onnx_versions = "onnx extra not installed"

    def cell(r: dict | None) -> str:
        if not r:
            return "-"
        if "error" in r:
            return "fails"
        return f"{r['seconds'] * 1000:.0f} ms"

    lines = [
        "## Latency per image (batch 1, CPU)",
        "",
        f"Machine: {machine()}; {onnx_versions}. Each row: its threads, the median of its "
        "repeats after its warm-up, the load average while it ran (the machine is shared: "
        "figures under load are upper bounds), and the command that made it.",
        "Seeded random weights, one fixed synthetic image (bench/latency.py docstring). "
        "Paddle Inference: IR optimisation on, oneDNN on / off. Peak RSS: the highest of our "
        "modes' own processes. Reference: paddledet 2.6.0's eager eval forward (its own venv, "
        "same Paddle) on the same weights and input; detections: count per mode (ours).",
        "",
        "| architecture | input | GFLOPs | eager | Paddle Inference + oneDNN | Paddle Inference "
        "| ONNX Runtime | best vs eager | compute bound | best / bound | peak RSS | detections "
        "| reference eager | eager / reference | measured (load) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    peak = results.get(MACHINE, {}).get("sgemm_gflops")
    if peak:
        m = results[MACHINE]
        lines.insert(
            4,
            f"Compute bound: GFLOPs / the CPU's float32 matrix-product peak, {peak:.0f} GFLOP/s "
            f"measured on {m['threads']} threads (Paddle's MKL sgemm 4096 x 4096, best of 10; "
            f"{m['date']}, load {m['load']:.1f}; it varied from 139 to 183 GFLOP/s between runs on "
            "this shared host): no float32 path can beat it by much.",
        )
    notes, commands = [], {}
    for arch in [a for a in ARCHS if a in results]:  # the _machine record is not a row
        res = results[arch]
        _, h, w, _ = ARCHS[arch]
        modes = res["modes"]
        ok = {m: r["seconds"] for m, r in modes.items() if r and "seconds" in r}
        ref = ok.pop("reference", None)
        best = min((s for m, s in ok.items() if m != "eager"), default=None)
        speedup = f"{ok['eager'] / best:.1f}x" if best and "eager" in ok else "-"
        ratio = f"{ok['eager'] / ref:.2f}" if ref and "eager" in ok else "-"
        ours = {m: r for m, r in modes.items() if m != "reference" and r}
        rss = max((r.get("peak_rss_mb", 0) for r in ours.values()), default=0)
        dets = sorted({r["detections"] for r in ours.values() if "detections" in r})
        no_ref = "no such model" if not ARCHS[arch][3] else "-"
        lines.append(
            f"| {arch} | {h}x{w} | {res['gflops']:.1f} | {cell(modes.get('eager'))} "
            f"| {cell(modes.get('paddle_mkldnn'))} | {cell(modes.get('paddle'))} "
            f"| {cell(modes.get('onnx')) if not res['onnx_error'] else 'does not convert'} "
            f"| {speedup} | {bound_cells(res['gflops'], best, peak)} | {rss:.0f} MB "
            f"| {'/'.join(map(str, dets))} "
            f"| {cell(modes.get('reference')) if 'reference' in modes else no_ref} | {ratio} "
            f"| {measured(res)} |"
        )
        if res["onnx_error"]:
            notes.append(f"- {arch}, ONNX: {res['onnx_error']}")
        for mode, r in modes.items():
            if r and "error" in r:
                notes.append(f"- {arch}, {mode}: fails: {r['error']}")
        for mode, r in modes.items():  # each figure's own command (older records: the row's)
            used = commands.setdefault((r or {}).get("command") or res.get("command", "?"), {})
            used.setdefault(arch, []).append(mode)
    lines += ["", *notes] if notes else []
    lines += ["", "Commands (paddlepaddle " + paddle.__version__ + "):"]
    for command, used in commands.items():
        which = "; ".join(f"{arch} ({', '.join(modes)})" for arch, modes in used.items())
        lines.append(f"- `{command}`: {which}")
    return "\n".join(lines)


def bound_cells(gflops: float, best: float | None, peak: float | None) -> str:
    """'bound ms | best / bound' (the table's two compute-bound cells)."""
    if not peak:
        return "- | -"
    bound = gflops / peak
    ratio = f"{best / bound:.2f}" if best else "-"
    return f"{bound * 1000:.0f} ms | {ratio}"


def measured(res: dict) -> str:
    """'date (load a-b)' over the modes of one row."""
    modes = res["modes"]
    if not any(r and "load" in r for r in modes.values()):  # an older record: per row
        return f"{res.get('date', '?')} (load {res.get('load', '?')})"
    loads = [r["load"] for r in modes.values() if r and "load" in r]
    dates = sorted({r["date"] for r in modes.values() if r and "date" in r})
    span = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    return f"{'/'.join(dates) or '?'} (load {span})"


def load_results() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS), choices=list(ARCHS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref-python", default=REF_PYTHON, help="paddledet 2.6's python")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARK.md")
    parser.add_argument(
        "--peak-only", action="store_true", help="measure the sgemm peak only, rewrite the table"
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ARCH", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.child:
        if args.child[0] == "peak":
            print(json.dumps({"sgemm_gflops": sgemm_peak(args.threads)}))
        else:
            print(json.dumps(child(*args.child, args.warmup, args.repeats, args.threads)))
        return

    from report import write_section

    from ppdet.atomic_io import atomic_write_text

    command = (
        f"MKL_DEBUG_CPU_TYPE={os.environ.get('MKL_DEBUG_CPU_TYPE', 'unset')} python "
        f"bench/latency.py --arch ARCH --repeats {args.repeats} --warmup {args.warmup} "
        f"--threads {args.threads}"
    )
    results = load_results()
    peak = run_child("peak", "-", REPO, args)
    print("sgemm peak", peak, flush=True)
    if "sgemm_gflops" in peak:
        peak.update(load=os.getloadavg()[0], date=time.strftime("%Y-%m-%d"), threads=args.threads)
        results = {**load_results(), MACHINE: peak}
        if not args.no_write:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(RESULTS, json.dumps(results, indent=1, sort_keys=True) + "\n")
    with tempfile.TemporaryDirectory(prefix="ppdet_latency_") as work:
        for arch in [] if args.peak_only else args.arch:
            out = Path(work) / arch
            res = {**prepare(arch, out), "modes": {}, "command": command}
            for mode in args.modes:
                if mode == "onnx" and res["onnx_error"]:
                    continue
                if mode == "reference" and not (Path(args.ref_python).is_file() and ARCHS[arch][3]):
                    continue
                load = os.getloadavg()[0]
                res["modes"][mode] = {**run_child(mode, arch, out, args), "load": load}
                res["modes"][mode]["date"] = time.strftime("%Y-%m-%d")
                res["modes"][mode]["command"] = command
                print(arch, mode, res["modes"][mode], flush=True)
            if not args.no_write:  # each architecture as soon as it is measured
                # modes not run now keep their earlier figures
                before = load_results().get(arch, {})
                earlier = before.get("modes", {})
                for r in earlier.values():  # an older record's command was the row's
                    if r and before.get("command"):
                        r.setdefault("command", before["command"])
                res["modes"] = {**earlier, **res["modes"]}
                results = {**load_results(), arch: res}
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(RESULTS, json.dumps(results, indent=1, sort_keys=True) + "\n")
            else:
                results[arch] = res
    text = table(results)
    print(text)
    if not args.no_write:
        write_section("latency", text)


if __name__ == "__main__":
    main()
