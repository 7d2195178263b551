"""Training throughput (images/s) of the demo YOLOv3-MobileNetV1 with 1 and 2 processes, and
the scaling efficiency: throughput(2) / (2 x throughput(1)).

Weak scaling: every process trains on ``--batch`` images per step, so 2 processes make steps
of twice the images. Each process gets ``--threads`` CPU threads (default 1: two processes
fill two cores, the same compute as one process per device); the 1-process run is also
measured with 2 threads, what a single process gets from the whole machine. The processes
run under ``python -m paddle.distributed.launch`` (gloo on CPU) and average their gradients
every step (ppdet/engine/distributed.py). Timing: wall time from the end of step
``--warmup`` to the end of step ``--warmup + --steps``, measured on rank 0 (data loading in
the training process, ``worker_num: 0``). Writes the ``scale`` section of BENCHMARK.md.

    MKL_DEBUG_CPU_TYPE=5 .venv/bin/python bench/scale.py [--steps 40] [--batch 4] [--size 192]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from report import machine, write_section  # noqa: E402  (bench/report.py)

CONFIG = os.path.join(REPO, "configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")


def worker(args: argparse.Namespace) -> None:
    """One process of a measured run (under the launcher or alone)."""
    import ppdet
    from ppdet.engine.hooks import TrainHook
    from ppdet.engine.trainer import Trainer

    class Clock(TrainHook):
        name = "clock"

        def __init__(self) -> None:
            self.times: list[float] = []

        def after_step(self, iteration: int) -> None:
            self.times.append(time.perf_counter())

    total = args.warmup + args.steps
    coco = os.path.join(args.data, "coco")
    opts = [
        f"TrainDataset.dataset_dir={coco}",
        f"EvalDataset.dataset_dir={coco}",
        f"TrainReader.batch_size={args.batch}",
        f"TrainReader.batch_transforms.BatchRandomResize.target_size=[{args.size}]",
        "epoch=null",
        f"max_iters={total}",
        "reference_batch_size=null",  # exactly `total` steps whatever the process count
        f"snapshot_iter={total}",
        f"log_iter={total}",
        f"LearningRate.schedulers.0.max_epochs={total}",
        "use_ema=false",
    ]
    cfg = ppdet.load_config(CONFIG, opts)
    trainer = Trainer(cfg, output_dir=args.out)
    clock = Clock()
    trainer.hooks.append(clock)
    trainer.train()
    if trainer.is_main:
        elapsed = clock.times[-1] - clock.times[args.warmup - 1]
        images = args.steps * args.batch * trainer.world_size
        result = {"processes": trainer.world_size, "images_per_s": images / elapsed}
        with open(os.path.join(args.out, "throughput.json"), "w") as f:
            json.dump(result, f)


def measure(args: argparse.Namespace, processes: int, threads: int, work: str) -> float:
    """images/s of one run with ``processes`` processes of ``threads`` threads each."""
    out = os.path.join(work, f"p{processes}_t{threads}")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    me = [os.path.abspath(__file__), "--worker", "--out", out, "--data", args.data]
    me += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    me += ["--batch", str(args.batch), "--size", str(args.size)]
    if processes == 1:
        cmd = [sys.executable, *me]
    else:
        launch = ["-m", "paddle.distributed.launch", "--nproc_per_node", str(processes)]
        cmd = [sys.executable, *launch, "--log_dir", os.path.join(out, "log"), *me]
    run = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit(f"the {processes}-process run failed")
    with open(os.path.join(out, "throughput.json")) as f:
        ips = json.load(f)["images_per_s"]
    print(f"{processes} process(es) x {threads} thread(s): {ips:.2f} images/s", flush=True)
    return ips


def _nice() -> str:
    """``nice -n N `` when this process runs niced (a shared machine), else ""."""
    level = os.nice(0)
    return f"nice -n {level} " if level else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=4, help="images per process per step")
    parser.add_argument("--size", type=int, default=192, help="input size (pixels, square)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARK.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="ppdet_scale_") as work:
        sys.path.insert(0, os.path.join(REPO, "dataset"))
        from generate_demo import generate

        args.data = os.path.join(work, "demo")
        generate(args.data, n_train=64, n_val=4, n_samples=1, seed=0)
        load = os.getloadavg()
        one = measure(args, 1, args.threads, work)
        two = measure(args, 2, args.threads, work)
        whole = measure(args, 1, 2 * args.threads, work)
        load_after = os.getloadavg()
    efficiency = two / (2 * one)
    print(f"scaling efficiency: {efficiency:.0%}")
    text = f"""## Data-parallel training throughput (CPU processes)

`{_nice()}MKL_DEBUG_CPU_TYPE=5 python bench/scale.py --steps {args.steps} --batch {args.batch} --size {args.size}` on {machine()}.
Demo YOLOv3-MobileNetV1 ({args.size}x{args.size}, {args.batch} images per process per step, \
{args.steps} timed steps after {args.warmup}), `python -m paddle.distributed.launch` with gloo; \
{args.threads} thread(s) per process. Load average of the (shared) machine: \
{load[0]:.1f} before, {load_after[0]:.1f} after.

| processes x threads | images / step | images / s |
|---|---:|---:|
| 1 x {args.threads} | {args.batch} | {one:.2f} |
| 2 x {args.threads} | {2 * args.batch} | {two:.2f} |
| 1 x {2 * args.threads} (one process using as many threads) | {args.batch} | {whole:.2f} |

Scaling efficiency 2 processes vs 1 (same threads each): **{efficiency:.0%}** \
(throughput(2) / (2 x throughput(1))). A load average above the number of cores means the
processes competed with other jobs for the CPU: the numbers then describe that machine, not
an idle one (more threads per process can even be slower there).
"""
    if not args.no_write:
        write_section("scale", text)
        print("wrote the scale section of BENCHMARK.md")


if __name__ == "__main__":
    main()
