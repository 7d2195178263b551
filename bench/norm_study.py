"""A miniature of seed 001's RetinaNet study on the demo set: one small RetinaNet
(``configs/retinanet/retinanet_mobilenet_v1_fpn_demo.yml``, trained from scratch with the
YOLOv3 demo's recipe) with each FPN / head norm and with GIoU vs smooth-L1, every variant with
the same steps, data and seeds, then COCO AP on the demo val split.

    MKL_DEBUG_CPU_TYPE=5 nice -n 5 python bench/norm_study.py [--seeds 0 1] [--jobs 2]
        [--steps 1200] [--lr LR] [--max-minutes M] [--only NAME ...] [--results FILE] [--write]
    python bench/norm_study.py --render [--results FILE] [--write [--note TEXT]]

Each (variant, seed) run is a child process (``--jobs`` at a time, each on one math thread,
``ppdet.engine.cpu_math``) that trains ``--steps`` iterations and evaluates; its numbers are
added to ``--results`` (JSON, default output/norm_study.json) as soon as it ends, and runs
already there are not repeated, so an interrupted study resumes. The table gives AP@0.5 and
AP@[.5:.95] per seed, their mean and spread (max - min over the seeds), and whether the
variant's AP@0.5 range over the seeds lies entirely above or below the baseline's (a
difference larger than the seed noise seen here) or overlaps it. ``--write`` puts it into
BENCHMARK.md (section ``norm_study``) with the command and the load average seen.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.report import machine, write_section  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "retinanet", "retinanet_mobilenet_v1_fpn_demo.yml")
DEMO = os.path.join(REPO, "dataset", "demo")
DEFAULT_RESULTS = os.path.join(REPO, "output", "norm_study.json")
DEMO_STEPS = 1200  # the demo's 24 epochs of 50 iterations

# (name, FPN norm_type, head norm_type, box loss): seed 001's rows, shrunk; the first is the
# baseline the others are compared with
VARIANTS = [
    ("no norm, smooth-L1", None, None, "SmoothL1Loss"),
    ("FPN GN, head BN", "gn", "bn", "SmoothL1Loss"),
    ("FPN GN, head GN", "gn", "gn", "SmoothL1Loss"),
    ("FPN BN, head BN", "bn", "bn", "SmoothL1Loss"),
    ("EvoNorm-S0", "evonorm_s0", "evonorm_s0", "SmoothL1Loss"),
    ("Switchable Norm", "sn", "sn", "SmoothL1Loss"),
    ("no norm, GIoU", None, None, "GIoULoss"),
    ("EvoNorm-S0, GIoU", "evonorm_s0", "evonorm_s0", "GIoULoss"),
]
BY_NAME = {v[0]: v for v in VARIANTS}


def _yaml(value) -> str:
    return "null" if value is None else str(value)


def overrides(
    fpn_norm, head_norm, loss: str, steps: int, seed: int, out_dir: str, lr: float | None = None
) -> list[str]:
    """-o options of one run (the study config otherwise unchanged; ``lr``: another base LR).
    The schedule keeps the demo's shape for any ``steps``: cosine over the run, warmup 100 of
    1200 iterations."""
    return ([f"LearningRate.base_lr={lr}"] if lr is not None else []) + [
        f"TrainDataset.dataset_dir={DEMO}/coco",
        f"EvalDataset.dataset_dir={DEMO}/coco",
        f"TestDataset.anno_path={DEMO}/coco/annotations/instances_val.json",
        f"save_dir={out_dir}",
        f"seed={seed}",
        f"max_iters={steps}",
        f"snapshot_iter={steps}",
        f"log_iter={max(1, steps // 6)}",
        f"LearningRate.schedulers.0.max_epochs={steps}",
        f"LearningRate.schedulers.1.steps={max(1, round(steps * 100 / DEMO_STEPS))}",
        f"FPN.norm_type={_yaml(fpn_norm)}",
        f"RetinaHead.conv_feat.norm_type={_yaml(head_norm)}",
        f"RetinaHead.loss_bbox={loss}",
    ]


def run_one(name: str, seed: int, steps: int, lr: float | None = None) -> dict:
    """Train one variant with one seed and evaluate it (in this process)."""
    import ppdet
    from ppdet.engine.trainer import Trainer

    _, fpn_norm, head_norm, loss = BY_NAME[name]
    with tempfile.TemporaryDirectory() as tmp:
        opts = overrides(fpn_norm, head_norm, loss, steps, seed, tmp, lr)
        cfg = ppdet.load_config(CONFIG, opts)
        tic, cpu_tic = time.time(), time.process_time()
        trainer = Trainer(cfg, output_dir=os.path.join(tmp, "run"))
        trainer.train()
        trained, cpu_trained = time.time(), time.process_time()
        if trainer.ema is not None:  # the demo evaluates the moving average (model_final)
            with trainer.ema.applied(trainer.model):
                metrics = trainer.evaluate()
        else:
            metrics = trainer.evaluate()
    return {
        "variant": name,
        "seed": seed,
        "steps": steps,
        "lr": float(cfg["LearningRate"]["base_lr"]),
        "AP": float(metrics["AP"]),
        "AP50": float(metrics["AP50"]),
        "train_s": trained - tic,
        "eval_s": time.time() - trained,
        "train_cpu_s": cpu_trained - cpu_tic,  # CPU seconds: comparable on a busy machine
        "eval_cpu_s": time.process_time() - cpu_trained,
    }


def _key(name: str, seed: int, steps: int) -> str:
    return f"{name}|seed {seed}|{steps} steps"


def load_results(path: str) -> dict:
    if not os.path.exists(path):
        return {"runs": {}, "load": []}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"norm_study: cannot read --results {path}: {e}; move it away") from None
    data.setdefault("runs", {})
    data.setdefault("load", [])
    return data


def save_results(path: str, data: dict) -> None:
    from ppdet.atomic_io import atomic_write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def run_all(
    tasks: list[tuple[str, int]],
    steps: int,
    jobs: int,
    path: str,
    lr: float | None = None,
    max_minutes: float | None = None,
) -> None:
    """Run the missing (variant, seed) tasks, ``jobs`` child processes at a time; record each
    result and the 1-minute load average (every 30 s) in ``path``. No run starts later than
    ``max_minutes`` after the first (those running then finish)."""
    data = load_results(path)
    todo = [t for t in tasks if _key(t[0], t[1], steps) not in data["runs"]]
    running: list[tuple[subprocess.Popen, str, int, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            deadline = time.time() + 60 * max_minutes if max_minutes else None
            _run_loop(todo, running, steps, jobs, path, data, tmp, lr, deadline)
        finally:
            for proc, *_ in running:  # an error or Ctrl-C: stop the children we started
                proc.terminate()
                proc.wait()
    save_results(path, data)


def _run_loop(
    todo: list, running: list, steps: int, jobs: int, path: str, data: dict, tmp: str, lr, deadline
) -> None:
    """The scheduling loop of ``run_all``: start children while slots are free, sample the
    load, collect finished children (a failed one stops the study with its log's tail)."""
    last_sample = 0.0
    while todo or running:
        if todo and deadline is not None and time.time() > deadline:
            print(f"time budget spent: not started {todo}", flush=True)
            todo.clear()
        while todo and len(running) < jobs:
            name, seed = todo.pop(0)
            out = os.path.join(tmp, f"{len(todo)}_{seed}.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--run-one", name]
            cmd += ["--seed", str(seed), "--steps", str(steps), "--out", out]
            cmd += ["--lr", str(lr)] if lr is not None else []
            with open(out[: -len(".json")] + ".log", "w") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            running.append((proc, name, seed, out))
            print(f"started {name}, seed {seed}", flush=True)
        if time.time() - last_sample >= 30:
            data["load"].append(round(os.getloadavg()[0], 2))
            last_sample = time.time()
        time.sleep(2)
        for item in list(running):
            proc, name, seed, out = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if proc.returncode != 0 or not os.path.exists(out):
                with open(out[: -len(".json")] + ".log", encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"norm_study: {name}, seed {seed} failed:\n{tail}")
            with open(out, encoding="utf-8") as f:
                result = json.load(f)
            data["runs"][_key(name, seed, steps)] = result
            save_results(path, data)
            print(
                f"{name}, seed {seed}: AP50 {result['AP50']:.4f}, AP {result['AP']:.4f} "
                f"(train {result['train_s']:.0f} s, eval {result['eval_s']:.0f} s)",
                flush=True,
            )


def _fmt_range(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def compare(values: list[float], base: list[float]) -> str:
    """'above' / 'below' when the two ranges over the seeds do not overlap, else 'within'."""
    if min(values) > max(base):
        return "above"
    if max(values) < min(base):
        return "below"
    return "within"


def render(data: dict, steps: int, seeds: list[int]) -> tuple[str, str]:
    """(table, summary sentence) from the recorded runs of these steps and seeds."""
    rows, verdicts = [], {"above": [], "below": [], "within": []}
    base = None
    header = (
        "| variant | FPN norm | head norm | box loss | AP@0.5 per seed | AP@0.5 mean | "
        "spread | AP@[.5:.95] per seed | AP mean | vs baseline (AP@0.5) | train CPU s/run |"
    )
    lines = [header, "|---|---|---|---|---|---:|---:|---|---:|---|---:|"]
    for name, fpn_norm, head_norm, loss in VARIANTS:
        runs = [data["runs"].get(_key(name, s, steps)) for s in seeds]
        runs = [r for r in runs if r is not None]
        if not runs:
            continue
        ap50 = [r["AP50"] for r in runs]
        ap = [r["AP"] for r in runs]
        if base is None:
            base, verdict = ap50, "baseline"
        else:
            verdict = compare(ap50, base)
            verdicts[verdict].append(name if len(runs) > 1 else f"{name} (1 seed)")
            verdict += " (1 seed)" if len(runs) == 1 else ""
        cpu = [r.get("train_cpu_s", r["train_s"]) for r in runs]
        spread = f"{max(ap50) - min(ap50):.3f}" if len(runs) > 1 else "-"
        lines.append(
            f"| {name} | {fpn_norm or '-'} | {head_norm or '-'} | {loss} | {_fmt_range(ap50)} | "
            f"{sum(ap50) / len(ap50):.3f} | {spread} | {_fmt_range(ap)} | "
            f"{sum(ap) / len(ap):.3f} | {verdict} | {sum(cpu) / len(cpu):.0f} |"
        )
        rows.append(name)
    parts = []
    for word, label in (("above", "above"), ("below", "below")):
        if verdicts[word]:
            parts.append(
                f"AP@0.5 range {label} the baseline's over all seeds: " + ", ".join(verdicts[word])
            )
    if verdicts["within"]:
        parts.append(
            "within the seed spread of the baseline (no difference shown): "
            + ", ".join(verdicts["within"])
        )
    return "\n".join(lines), "; ".join(parts) + "." if parts else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help="iterations per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per variant")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one core each)")
    parser.add_argument("--lr", type=float, help="base LR (default: the config's)")
    parser.add_argument(
        "--max-minutes", type=float, help="start no run later than this after the first"
    )
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="JSON of the finished runs")
    parser.add_argument("--render", action="store_true", help="only tabulate --results")
    parser.add_argument("--write", action="store_true", help="write BENCHMARK.md's section")
    parser.add_argument("--note", help="a paragraph appended to the BENCHMARK.md section")
    parser.add_argument("--run-one", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.jobs < 1:
        parser.error("--steps and --jobs must be >= 1")

    if args.run_one:  # a child: one run, its numbers into --out
        from ppdet.engine.cpu_math import configure_cpu_math

        configure_cpu_math()  # before Paddle loads: one fixed math thread
        if args.run_one not in BY_NAME:
            parser.error(f"unknown variant {args.run_one!r}")
        result = run_one(args.run_one, args.seed, args.steps, args.lr)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f)
        return 0

    # SIGTERM (e.g. a scheduler) like Ctrl-C: run_all's cleanup stops the children it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [v[0] for v in VARIANTS if not args.only or v[0] in args.only]
    if not chosen:
        parser.error(f"--only: no such variant; known: {[v[0] for v in VARIANTS]}")
    command = "python bench/norm_study.py " + " ".join(sys.argv[1:])
    if not args.render:
        sys.path.insert(0, os.path.join(REPO, "dataset"))
        from generate_demo import generate

        generate(DEMO)  # no-op when the same seeded set is there
        tic = time.time()
        # every variant once first, then the further seeds (the baseline's first)
        tasks = [(name, seed) for seed in args.seeds for name in chosen]
        run_all(tasks, args.steps, args.jobs, args.results, args.lr, args.max_minutes)
        print(f"study wall time {time.time() - tic:.0f} s", flush=True)
        data = load_results(args.results)
        data["command"] = command  # what --render --write quotes later
        save_results(args.results, data)
    data = load_results(args.results)
    table, summary = render(data, args.steps, args.seeds)
    print(table)
    print(summary)
    if args.write:
        load = data["load"]
        lrs = sorted({r.get("lr", 0.04) for r in data["runs"].values() if r["steps"] == args.steps})
        lr_text = " / ".join(f"{v:g}" for v in lrs)
        load_text = (
            f"1-minute load average during the runs {min(load):.2f}-{max(load):.2f} "
            f"(median {sorted(load)[len(load) // 2]:.2f}, {len(load)} samples)"
            if load
            else "load average not recorded"
        )
        write_section(
            "norm_study",
            "## RetinaNet norms and box loss: a miniature of seed 001 (demo set)\n\n"
            f"`MKL_DEBUG_CPU_TYPE=5 nice -n 5 {data.get('command', command)}` on {machine()}; "
            f"{load_text}; "
            "each run on one math thread (times are indicative on a shared machine, the "
            "numbers are not: a run is deterministic for its seed).\n\n"
            "Every variant is the same RetinaNet (MobileNetV1 x0.25 C3-C5, 64-channel FPN "
            "P3-P6, 2-conv towers, `configs/retinanet/retinanet_mobilenet_v1_fpn_demo.yml`) "
            "trained from scratch with the YOLOv3 demo's recipe (batch 8 at 192 x 192, Adam, "
            "cosine decay with a linear warmup over the first 1/12 of the run, EMA 0.998, no "
            f"weight decay) for {args.steps} iterations ({args.steps * 8 / 400:g} epochs of the "
            f"400 demo training images; the demo trains {DEMO_STEPS}) at Adam LR {lr_text}; "
            "only the FPN norm, "
            "the head-tower norm and the box loss change. Seeds "
            + ", ".join(map(str, args.seeds))
            + "; COCO AP of the EMA weights on the 80 demo val images. 'spread' is max - min "
            "over the seeds; 'vs baseline' is 'above' / 'below' when the variant's AP@0.5 "
            "range over the seeds does not overlap the baseline's (first row), 'within' "
            "otherwise. With so few seeds the spread is only a rough measure of the noise: "
            "'within' means no difference shown, not equal accuracy; and a tiny synthetic set "
            "at 192 px says little about COCO (seed 001's own differences are 0.1-5 AP).\n\n"
            + table
            + "\n\n"
            + summary
            + ("\n\n" + args.note if args.note else ""),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
