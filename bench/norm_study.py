"""A miniature of seed 001's RetinaNet study on the demo set: the same RetinaNet-R18
(``configs/retinanet/retinanet_r18_fpn_demo.yml``, trained from scratch) with each FPN / head
norm and with GIoU vs smooth-L1, every variant for the same number of steps, then COCO mAP on
the demo val split.

    MKL_DEBUG_CPU_TYPE=5 nice -n 5 python bench/norm_study.py [--steps 150] [--only NAME ...]
        [--write]

The demo set is generated into dataset/demo if it is not there (dataset/generate_demo.py,
seeded). Every variant starts from the same seed, trains ``--steps`` iterations of batch 8 at
192 x 192 (Adam, LR 1e-3 cosine to 0 over the steps, 10% warmup), and is evaluated on the 80
val images. ``--write`` puts the table into BENCHMARK.md (section ``norm_study``) with the step
budget; a short budget ranks the variants by how fast they learn, not by their final accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.report import machine, write_section  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "retinanet", "retinanet_r18_fpn_demo.yml")
DEMO = os.path.join(REPO, "dataset", "demo")

# (name, FPN norm_type, head norm_type, box loss): seed 001's rows, shrunk
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


def _yaml(value) -> str:
    return "null" if value is None else str(value)


def overrides(fpn_norm, head_norm, loss: str, steps: int, out_dir: str) -> list[str]:
    """-o options of one variant (the demo config otherwise unchanged)."""
    return [
        f"TrainDataset.dataset_dir={DEMO}/coco",
        f"EvalDataset.dataset_dir={DEMO}/coco",
        f"TestDataset.anno_path={DEMO}/coco/annotations/instances_val.json",
        f"save_dir={out_dir}",
        f"max_iters={steps}",
        f"snapshot_iter={steps}",
        f"log_iter={max(1, steps // 5)}",
        f"LearningRate.schedulers.0.max_epochs={steps}",
        f"LearningRate.schedulers.1.steps={max(1, steps // 10)}",
        f"FPN.norm_type={_yaml(fpn_norm)}",
        f"RetinaHead.conv_feat.norm_type={_yaml(head_norm)}",
        f"RetinaHead.loss_bbox={loss}",
    ]


def run(name: str, fpn_norm, head_norm, loss: str, steps: int, out_dir: str) -> dict:
    """Train one variant and evaluate it: {"AP", "AP50", "train_s", "eval_s"}."""
    import ppdet
    from ppdet.engine.trainer import Trainer

    cfg = ppdet.load_config(CONFIG, overrides(fpn_norm, head_norm, loss, steps, out_dir))
    tic = time.time()
    trainer = Trainer(cfg, output_dir=os.path.join(out_dir, name.replace(" ", "_")))
    trainer.train()
    trained = time.time()
    metrics = trainer.evaluate()
    return {
        "AP": metrics["AP"],
        "AP50": metrics["AP50"],
        "train_s": trained - tic,
        "eval_s": time.time() - trained,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training iterations per variant")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--write", action="store_true", help="write BENCHMARK.md's section")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    sys.path.insert(0, os.path.join(REPO, "dataset"))
    from generate_demo import generate

    generate(DEMO)  # no-op when the same seeded set is there
    chosen = [v for v in VARIANTS if not args.only or v[0] in args.only]
    if not chosen:
        parser.error(f"--only: no such variant; known: {[v[0] for v in VARIANTS]}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fpn_norm, head_norm, loss in chosen:
            result = run(name, fpn_norm, head_norm, loss, args.steps, tmp)
            rows.append((name, fpn_norm, head_norm, loss, result))
            print(
                f"{name}: AP {result['AP']:.4f}, AP50 {result['AP50']:.4f} "
                f"(train {result['train_s']:.0f} s, eval {result['eval_s']:.0f} s)",
                flush=True,
            )
    lines = [
        "| variant | FPN norm | head norm | box loss | AP@[.5:.95] | AP@0.5 | train (s) | eval (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, fpn_norm, head_norm, loss, r in rows:
        lines.append(
            f"| {name} | {fpn_norm or '-'} | {head_norm or '-'} | {loss} | {r['AP']:.4f} | "
            f"{r['AP50']:.4f} | {r['train_s']:.0f} | {r['eval_s']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(
            "norm_study",
            "## RetinaNet norms and box loss: a miniature of seed 001 (demo set)\n\n"
            f"`MKL_DEBUG_CPU_TYPE=5 nice -n 5 python bench/norm_study.py --steps {args.steps} "
            f"--write` on {machine()} (shared with other jobs: times are indicative).\n"
            f"Budget: {args.steps} iterations of batch 8 at 192 x 192 per variant (about "
            f"{args.steps * 8 / 400:.1f} epochs of the 400 demo training images), RetinaNet-R18 "
            "with 64-channel FPN and 2-conv towers from scratch, Adam 1e-3 with cosine decay and "
            "10% warmup, seed 0; COCO AP on the 80 demo val images. The budget is far from "
            "convergence: the table ranks how fast each variant learns, not its final accuracy.\n\n"
            + table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
