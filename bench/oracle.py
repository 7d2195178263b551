"""Shared helpers of the PaddleDetection 2.6 oracle comparisons (``bench/compare_*.py``).

The oracle is the reference package ``paddledet==2.6.0`` (its import name is also ``ppdet``),
installed in its own virtualenv at ``/tmp/refvenv`` and never imported from ours: each
comparison writes a small script into a work directory, runs it with the reference
interpreter (a subprocess, ``PYTHONPATH`` removed) and reads back ``reference.npz``. Set up
the reference venv once (nothing else in the repo needs it):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install paddlepaddle==3.1.1 'numpy<2.4'
    /tmp/refvenv/bin/pip install --no-deps paddledet==2.6.0
    /tmp/refvenv/bin/pip install pyyaml requests tqdm opencv-python-headless pycocotools \
        six scipy matplotlib scikit-learn pandas

Here: reference-script pieces (imports, the Paddle 3 ``concat`` patch, the random-weight
fill), the fixed 2-image batch, 2.x output clean-up, the subprocess run and the printed
comparison lines (``<case>: MATCH`` / ``DIFFERENT``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paddle  # noqa: E402

REF_PYTHON = "/tmp/refvenv/bin/python"

# Reference-script header: imports of the reference package.
SCRIPT_IMPORTS = r"""
import sys
import numpy as np
import paddle
from ppdet.core.workspace import create, load_config
"""

# 2.6.0 concatenates per-image RoI counts that Paddle 3 returns as 0-d tensors: lift them to [1]
CONCAT_0D_PATCH = r"""
_concat = paddle.concat
def _concat_0d(x, axis=0, name=None):
    if isinstance(x, (list, tuple)) and x and all(getattr(t, "ndim", 1) == 0 for t in x):
        x = [t.reshape([1]) for t in x]
    return _concat(x, axis=axis, name=name)
paddle.concat = _concat_0d
"""

# R-CNN reference configs: deterministic RPN anchor and RoI sampling (ours: DETERMINISTIC)
RCNN_DETERMINISTIC = """\
cfg["RPNHead"]["rpn_target_assign"]["use_random"] = False
cfg["BBoxAssigner"]["use_random"] = False
"""
DETERMINISTIC = {"RPNHead.rpn_target_assign.use_random": False, "BBoxAssigner.use_random": False}


def fill_weights(adjust: str, gain: str = "1.0", linear: bool = False) -> str:
    """Reference-script loop giving every parameter of ``model`` random values seeded by
    ``seed``: LeCun-normal convs times ``gain`` (a script expression), Linear [in, out] weights
    LeCun-normal if ``linear``, BN near identity, small biases; ``adjust`` (lines indented 4
    spaces, may change ``value``) runs before each ``set_value``."""
    linear_branch = (
        "    elif len(shape) == 2:  # Linear [in, out]\n"
        "        value = rng.normal(0.0, np.sqrt(1.0 / shape[0]), shape)\n"
        if linear
        else ""
    )
    return (
        "rng = np.random.default_rng(seed)\n"
        "for name, param in model.state_dict().items():\n"
        "    shape = param.shape\n"
        '    if name.endswith("_variance") or (name.endswith("weight") and len(shape) == 1):\n'
        "        value = rng.uniform(0.5, 1.5, shape)\n"
        "    elif len(shape) == 4:\n"
        f"        value = rng.normal(0.0, np.sqrt({gain} / np.prod(shape[1:])), shape)\n"
        f"{linear_branch}"
        "    else:\n"
        "        value = rng.normal(0.0, 0.1, shape)\n"
        f"{adjust}"
        '    param.set_value(value.astype("float32"))\n'
        'paddle.save(model.state_dict(), f"{out_dir}/model.pdparams")\n'
    )


# Reference-script eval on inputs.npz: records bbox / bbox_num into ``result``.
EVAL_BOXES = r"""
inputs = dict(np.load(f"{out_dir}/inputs.npz"))
model.eval()
batch = {k: paddle.to_tensor(inputs[k]) for k in ("image", "im_shape", "scale_factor")}
with paddle.no_grad():
    out = model(batch)
result = {"bbox": out["bbox"].numpy(), "bbox_num": out["bbox_num"].numpy()}
print("reference: bbox", out["bbox"].shape, "bbox_num", out["bbox_num"].numpy().tolist())
"""


def train_list_gt(loss_value: str) -> str:
    """Reference-script training step on per-image gt lists ``gt_bbox{b}``/``gt_class{b}``,
    losses printed as ``{k: <loss_value>}`` (an expression of ``v``), saved with ``result``."""
    return (
        "\nmodel.train()\n"
        'n_images = inputs["image"].shape[0]\n'
        'batch["gt_bbox"] = [paddle.to_tensor(inputs[f"gt_bbox{b}"]) for b in range(n_images)]\n'
        'batch["gt_class"] = [paddle.to_tensor(inputs[f"gt_class{b}"]) for b in range(n_images)]\n'
        "losses = model(batch)\n"
        "result.update({k: v.numpy() for k, v in losses.items()})\n"
        f'print("reference:", {{k: {loss_value} for k, v in losses.items()}})\n'
        'np.savez(f"{out_dir}/reference.npz", **result)\n'
    )


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


def real_rows(part: np.ndarray) -> np.ndarray:
    """[n] bool: rows of one image's 2.x ``bbox`` [n, 6] that are real detections. Drops the
    fake row of an image without detections (score 0, box (0, 0, 1, 1) in input pixels, so
    (0, 0, 1 / w_scale, 1 / h_scale) after rescaling: real rows score >= the NMS threshold)
    and class -1 rows (boxes empty after clipping)."""
    if len(part) == 1 and part[0, 1] == 0 and not part[0, 2:4].any():
        return np.zeros(1, bool)
    return part[:, 0] >= 0


def strip_reference(bbox: np.ndarray, bbox_num: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.x ``bbox`` [N, 6] / ``bbox_num`` [B] without its fake and class -1 rows."""
    rows, start = [], 0
    for n in bbox_num.tolist():
        part = bbox[start : start + n]
        start += n
        rows.append(part[real_rows(part)])
    return np.concatenate(rows).reshape(-1, 6), np.array([len(r) for r in rows], "int32")


def copy_configs(work: Path, *names: str) -> None:
    """Create ``work`` and copy ``configs/_base_/<name>.yml`` files into it."""
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(REPO / "configs" / "_base_" / f"{name}.yml", work / f"{name}.yml")


def run_reference(
    case: str, work: Path, script: str, args: list[str], ref_python: str
) -> dict[str, np.ndarray]:
    """Run ``script`` as ``reference_run.py`` in ``work`` under ``ref_python`` (argv = ``args``),
    print its output under ``[case]`` and return its ``reference.npz``."""
    (work / "reference_run.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [ref_python, "reference_run.py", *args]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit(f"{case}: the reference script failed")
    print(f"[{case}]\n" + run.stdout.strip())
    return dict(np.load(work / "reference.npz"))


def boxes_match(
    bbox: np.ndarray, ref_bbox: np.ndarray, box_tol: float, relative: bool = False
) -> bool:
    """Print the max |diff| of class, score and box of two [N, 6] arrays; True if classes are
    equal, scores within 1e-5 and boxes within ``box_tol`` px (``relative``: relative to
    max(|coordinate|, 100 px), for the huge boxes of random deep nets)."""
    diff = np.abs(bbox - ref_bbox)  # [N, 6]
    line = (
        f"  max |diff|: class {diff[:, 0].max(initial=0):.3g}, score "
        f"{diff[:, 1].max(initial=0):.3g}, box {diff[:, 2:].max(initial=0):.3g} px"
    )
    box = diff[:, 2:]
    if relative:
        box = box / np.maximum(np.abs(ref_bbox[:, 2:]), 100.0)
        line += f" (relative to max(|coordinate|, 100 px): {box.max(initial=0):.2g})"
    print(line)
    ok = diff[:, 0].max(initial=0) == 0 and diff[:, 1].max(initial=0) < 1e-5
    return bool(ok and box.max(initial=0) < box_tol)


def losses_match(
    names: tuple[str, ...],
    ours: Mapping[str, float],
    ref: Mapping[str, np.ndarray],
    sep: str = ";\n  ",
) -> bool:
    """Print ``name ours vs theirs (rel ...)`` for each loss; True if all within 1e-4."""
    ok, parts = True, []
    for name in names:
        mine, theirs = float(ours[name]), float(ref[name])
        rel = abs(mine - theirs) / max(abs(theirs), 1e-12)
        ok = ok and rel < 1e-4
        parts.append(f"{name} {mine:.5f} vs {theirs:.5f} (rel {rel:.1e})")
    print("  " + sep.join(parts))
    return ok


def verdict(case: str, ok: bool) -> bool:
    """Print ``<case>: MATCH`` or ``DIFFERENT`` and return ``ok``."""
    print(f"{case}: {'MATCH' if ok else 'DIFFERENT'}\n")
    return ok


def load_and_detect(
    cfg, work: Path, inputs: dict[str, np.ndarray]
) -> tuple[paddle.nn.Layer, bool, dict[str, paddle.Tensor], dict]:
    """Build our model from ``cfg``, load ``work/model.pdparams`` strictly and run
    ``model.predict`` (forward + postprocess, eval mode) on the image fields of ``inputs``.
    Returns (model, no missing/unused keys, the image batch, the eval outputs)."""
    import ppdet
    from ppdet.zoo.weights import load_weights

    model = ppdet.build_model(cfg)
    report = load_weights(model, str(work / "model.pdparams"), strict=True)
    ok = not report.missing and not report.unused
    batch = {k: paddle.to_tensor(inputs[k]) for k in ("image", "im_shape", "scale_factor")}
    model.eval()
    return model, ok, batch, model.predict(batch)


def main(
    doc: str,
    cases: tuple[tuple, ...],
    compare: Callable[..., bool],
    prefix: str,
    keep_option: bool = False,
) -> None:
    """Command line of a comparison (--ref-python, --cases, --seed, optionally --keep): runs
    ``compare(case, *rest, ref_python, seed, work)`` for each selected case of ``cases`` in a
    temporary directory; exits 0 if all match, else 1."""
    names = [c[0] for c in cases]
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--ref-python", default=REF_PYTHON)
    parser.add_argument("--cases", nargs="+", default=names, choices=names)
    parser.add_argument("--seed", type=int, default=0)
    if keep_option:
        parser.add_argument(
            "--keep", default="", help="work directory to keep (default: temporary)"
        )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tmp = getattr(args, "keep", "") or tmp
        results = [
            compare(case, *rest, args.ref_python, args.seed, Path(tmp) / case)
            for case, *rest in cases
            if case in args.cases
        ]
    raise SystemExit(0 if all(results) else 1)
