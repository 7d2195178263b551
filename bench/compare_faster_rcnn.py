"""Check that PaddleDetection 2.6 Faster R-CNN weights give the same detections and losses here.

The reference package (``paddledet==2.6.0`` in its own venv) runs as a black box: a small
script builds PaddleDetection's FasterRCNN through its own config machinery from our
``configs/_base_/faster_rcnn_*.yml`` (same keys and values as 2.x's), gives every parameter
and BN statistic random values, saves the ``.pdparams``, and records ``bbox``/``bbox_num`` on a
fixed 2-image batch (different sizes, one zero-padded, different scale factors) and the
training losses on fixed ground truth with deterministic sampling (``use_random: false`` for
the RPN anchors and the RoIs, in both implementations). We load the file strictly into our
model, built through our config system, and compare.

2.x pads an image without detections with a fake row and marks boxes that are empty after
clipping with class -1; both are dropped from its output before comparing (our contract has
no such rows).

    .venv/bin/python bench/compare_faster_rcnn.py [--ref-python /tmp/refvenv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paddle  # noqa: E402

import ppdet  # noqa: E402
from ppdet.zoo.weights import load_weights  # noqa: E402

# (case name, _base_ config, background-logit bias shift: larger = fewer detections)
CASES = (
    ("r50_fpn", "faster_rcnn_r50_fpn", 0.0),
    ("r50_fpn_sparse", "faster_rcnn_r50_fpn", 6.0),
    ("r50_c4", "faster_rcnn_r50", 0.0),
)
DETERMINISTIC = {"RPNHead.rpn_target_assign.use_random": False, "BBoxAssigner.use_random": False}

# Runs under the reference interpreter: argv = config, work dir, seed, background shift.
REFERENCE_SCRIPT = r"""
import sys
import numpy as np
import paddle
from ppdet.core.workspace import create, load_config

# 2.6.0 concatenates per-image RoI counts that Paddle 3 returns as 0-d tensors: lift them to [1]
_concat = paddle.concat
def _concat_0d(x, axis=0, name=None):
    if isinstance(x, (list, tuple)) and x and all(getattr(t, "ndim", 1) == 0 for t in x):
        x = [t.reshape([1]) for t in x]
    return _concat(x, axis=axis, name=name)
paddle.concat = _concat_0d

config, out_dir, seed, shift = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
cfg = load_config(config)
cfg["RPNHead"]["rpn_target_assign"]["use_random"] = False
cfg["BBoxAssigner"]["use_random"] = False
model = create(cfg.architecture)
rng = np.random.default_rng(seed)
for name, param in model.state_dict().items():
    shape = param.shape
    if name.endswith("_variance") or (name.endswith("weight") and len(shape) == 1):
        value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) == 4:
        value = rng.normal(0.0, np.sqrt(1.0 / np.prod(shape[1:])), shape)
    elif len(shape) == 2:  # Linear [in, out]
        value = rng.normal(0.0, np.sqrt(1.0 / shape[0]), shape)
    else:
        value = rng.normal(0.0, 0.1, shape)
    if name == "bbox_head.bbox_score.bias":
        value[-1] += shift
    param.set_value(value.astype("float32"))
paddle.save(model.state_dict(), f"{out_dir}/model.pdparams")

inputs = dict(np.load(f"{out_dir}/inputs.npz"))
model.eval()
batch = {k: paddle.to_tensor(inputs[k]) for k in ("image", "im_shape", "scale_factor")}
with paddle.no_grad():
    out = model(batch)
result = {"bbox": out["bbox"].numpy(), "bbox_num": out["bbox_num"].numpy()}
print("reference: bbox", out["bbox"].shape, "bbox_num", out["bbox_num"].numpy().tolist())

model.train()
n_images = inputs["image"].shape[0]
batch["gt_bbox"] = [paddle.to_tensor(inputs[f"gt_bbox{b}"]) for b in range(n_images)]
batch["gt_class"] = [paddle.to_tensor(inputs[f"gt_class{b}"]) for b in range(n_images)]
losses = model(batch)
result.update({k: v.numpy() for k, v in losses.items()})
print("reference:", {k: round(float(v), 6) for k, v in losses.items()})
np.savez(f"{out_dir}/reference.npz", **result)
"""


def fixed_inputs(seed: int) -> dict[str, np.ndarray]:
    """2 images padded to 160x224: 160x224 from 320x448, 128x192 (zero padding) from
    320x480; ground truth in input pixels (3 boxes, 1 box)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1, (2, 3, 160, 224)).astype("float32")
    image[1, :, 128:, :] = 0
    image[1, :, :, 192:] = 0
    return {
        "image": image,
        "im_shape": np.array([[160, 224], [128, 192]], "float32"),
        "scale_factor": np.array([[0.5, 0.5], [0.4, 0.4]], "float32"),
        "gt_bbox0": np.array([[10, 20, 60, 90], [100, 30, 200, 150], [5, 5, 20, 18]], "float32"),
        "gt_class0": np.array([[3], [17], [0]], "int32"),
        "gt_bbox1": np.array([[40, 40, 120, 100]], "float32"),
        "gt_class1": np.array([[79]], "int32"),
    }


def padded_gt(inputs: dict[str, np.ndarray]) -> dict[str, paddle.Tensor]:
    """Per-image gt lists -> our PadGT batch fields."""
    n = inputs["image"].shape[0]
    m = max(len(inputs[f"gt_bbox{b}"]) for b in range(n))
    gt_bbox = np.zeros((n, m, 4), "float32")
    gt_class = np.zeros((n, m, 1), "int32")
    mask = np.zeros((n, m, 1), "float32")
    for b in range(n):
        k = len(inputs[f"gt_bbox{b}"])
        gt_bbox[b, :k] = inputs[f"gt_bbox{b}"]
        gt_class[b, :k] = inputs[f"gt_class{b}"]
        mask[b, :k] = 1
    return {
        "gt_bbox": paddle.to_tensor(gt_bbox),
        "gt_class": paddle.to_tensor(gt_class),
        "pad_gt_mask": paddle.to_tensor(mask),
    }


def strip_reference(bbox: np.ndarray, bbox_num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop 2.x's fake rows (an image without detections) and class -1 rows (empty boxes)."""
    rows, nums, start = [], [], 0
    for n in bbox_num.tolist():
        part = bbox[start : start + n]
        start += n
        fake = n == 1 and part[0, 1] == 0 and np.array_equal(part[0, 2:], [0, 0, 1, 1])
        part = part[:0] if fake else part[part[:, 0] >= 0]
        rows.append(part)
        nums.append(len(part))
    return np.concatenate(rows).reshape(-1, 6), np.array(nums, "int32")


def compare(case: str, base: str, shift: float, ref_python: str, seed: int, work: Path) -> bool:
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "configs" / "_base_" / f"{base}.yml", work / f"{base}.yml")
    inputs = fixed_inputs(seed)
    np.savez(work / "inputs.npz", **inputs)
    (work / "reference_run.py").write_text(REFERENCE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [ref_python, "reference_run.py", f"{base}.yml", ".", str(seed), str(shift)]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit(f"{case}: the reference script failed")
    print(f"[{case}]\n" + run.stdout.strip())
    ref = dict(np.load(work / "reference.npz"))
    ref_bbox, ref_num = strip_reference(ref["bbox"], ref["bbox_num"])

    overrides = [f"{k}={str(v).lower()}" for k, v in DETERMINISTIC.items()]
    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{base}.yml"), overrides)
    model = ppdet.build_model(cfg)
    report = load_weights(model, str(work / "model.pdparams"), strict=True)
    ok = not report.missing and not report.unused
    batch = {k: paddle.to_tensor(inputs[k]) for k in ("image", "im_shape", "scale_factor")}
    model.eval()
    with paddle.no_grad():
        out = model(batch)
    bbox, bbox_num = out["bbox"].numpy(), out["bbox_num"].numpy()
    print(f"ours: bbox {bbox.shape}, bbox_num {bbox_num.tolist()} (reference without fake/-1 "
          f"rows: {ref_num.tolist()})")
    if not np.array_equal(bbox_num, ref_num):
        print(f"{case}: DIFFERENT bbox_num\n")
        return False
    diff = np.abs(bbox - ref_bbox)  # [N, 6]
    print(
        f"  max |diff|: class {diff[:, 0].max(initial=0):.3g}, score "
        f"{diff[:, 1].max(initial=0):.3g}, box {diff[:, 2:].max(initial=0):.3g} px"
    )
    ok = ok and diff[:, 0].max(initial=0) == 0 and diff[:, 1].max(initial=0) < 1e-5
    ok = ok and diff[:, 2:].max(initial=0) < 1e-3

    model.train()
    losses = model({**batch, **padded_gt(inputs)})
    parts = []
    for name in ("loss", "loss_rpn_cls", "loss_rpn_reg", "loss_bbox_cls", "loss_bbox_reg"):
        ours, theirs = float(losses[name]), float(ref[name])
        rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
        ok = ok and rel < 1e-4
        parts.append(f"{name} {ours:.5f} vs {theirs:.5f} (rel {rel:.1e})")
    print("  " + ";\n  ".join(parts))
    print(f"{case}: {'MATCH' if ok else 'DIFFERENT'}\n")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-python", default="/tmp/refvenv/bin/python")
    names = [c[0] for c in CASES]
    parser.add_argument("--cases", nargs="+", default=names, choices=names)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppdet_frcnn_oracle_") as tmp:
        results = [
            compare(case, base, shift, args.ref_python, args.seed, Path(tmp) / case)
            for case, base, shift in CASES
            if case in args.cases
        ]
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
