"""Check that PaddleDetection 2.6 weights give the same detections in our YOLOv3.

The reference package (``paddledet==2.6.0``) lives in a separate virtualenv and is used as a
black box: a small script run under that interpreter builds PaddleDetection's YOLOv3 through
its own config machinery (from our ``configs/_base_`` model sections), gives every parameter
and BN statistic random values, saves the ``.pdparams`` and its eval outputs for a fixed
input. We then load that file unchanged (strictly: no missing or unused keys) into our model,
built through our config system, and compare ``bbox`` / ``bbox_num``.

Usage (the reference env is not needed by anything else in the repo):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install paddlepaddle==3.1.1 'numpy<2.4'
    /tmp/refvenv/bin/pip install --no-deps paddledet==2.6.0
    /tmp/refvenv/bin/pip install pyyaml requests tqdm opencv-python-headless pycocotools \
        six scipy matplotlib scikit-learn pandas
    .venv/bin/python bench/compare_with_paddledet.py [--ref-python /tmp/refvenv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paddle  # noqa: E402

import ppdet.modeling  # noqa: E402, F401  (registers the model classes)
from ppdet.config.builder import create  # noqa: E402
from ppdet.config.loader import load_config  # noqa: E402
from ppdet.zoo.weights import load_weights  # noqa: E402

MODELS = ("yolov3_mobilenet_v1", "yolov3_darknet53")

# Runs under the reference interpreter: argv = config, inputs.npz, output dir, seed.
REFERENCE_SCRIPT = r"""
import sys
import numpy as np
import paddle
from ppdet.core.workspace import create, load_config

config, inputs_path, out_dir, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = load_config(config)
model = create(cfg.architecture)
model.eval()

# random but well-scaled values: He-normal conv weights, BN close to identity
rng = np.random.default_rng(seed)
for name, param in model.state_dict().items():
    shape = param.shape
    if name.endswith("_variance") or (name.endswith("weight") and len(shape) == 1):
        value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) == 4:
        value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
    else:  # BN bias / mean, conv bias
        value = rng.normal(0.0, 0.1, shape)
    param.set_value(value.astype("float32"))
paddle.save(model.state_dict(), f"{out_dir}/model.pdparams")

inputs = {k: paddle.to_tensor(v) for k, v in np.load(inputs_path).items()}
with paddle.no_grad():
    out = model(inputs)
np.savez(f"{out_dir}/reference.npz", bbox=out["bbox"].numpy(), bbox_num=out["bbox_num"].numpy())
print("reference: bbox", out["bbox"].shape, "bbox_num", out["bbox_num"].numpy().tolist())
"""


# Runs under the reference interpreter: argv = case.npz, output npz. Builds PaddleDetection's
# YOLOv3Head + YOLOv3Loss with the given head weights, its Gt2YoloTarget targets from the gt
# (its data pipeline feeds normalised cx, cy, w, h boxes), and evaluates the training loss.
REFERENCE_LOSS_SCRIPT = r"""
import sys
import numpy as np
import paddle
from ppdet.data.transform.batch_operators import Gt2YoloTarget
from ppdet.modeling.heads.yolo_head import YOLOv3Head
from ppdet.modeling.losses.yolo_loss import YOLOv3Loss

case = dict(np.load(sys.argv[1]))
anchors = case["anchors"].tolist()
masks = case["anchor_masks"].tolist()
downsample = case["downsample"].tolist()
num_classes = int(case["num_classes"])
batch, _, height, width = case["image_shape"].tolist()
feats = [paddle.to_tensor(case[f"feat{i}"]) for i in range(len(masks))]

boxes = case["gt_bbox"].astype("float64")  # [B, M, 4] x1y1x2y2 pixels, zero rows = padding
x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
norm = np.stack([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height,
                 (x2 - x1) / width, (y2 - y1) / height], -1)  # [B, M, 4] cx, cy, w, h in 0..1
norm = (norm * case["pad_gt_mask"]).astype("float32")
samples = [{"image": np.zeros([3, height, width], "float32"), "gt_bbox": norm[b],
            "gt_class": case["gt_class"][b], "gt_score": case["gt_score"][b]} for b in range(batch)]
samples = Gt2YoloTarget(anchors, masks, downsample, num_classes)(samples)
targets = {"gt_bbox": paddle.to_tensor(norm)}
for i in range(len(masks)):
    targets[f"target{i}"] = paddle.to_tensor(np.stack([s[f"target{i}"] for s in samples]))

results = {}
for variant, kwargs in [("plain", {}), ("label_smooth", {"label_smooth": True}),
                        ("scale_x_y", {"scale_x_y": 1.05}), ("ignore_0.4", {"ignore_thresh": 0.4})]:
    loss = YOLOv3Loss(num_classes=num_classes, downsample=downsample, **kwargs)
    head = YOLOv3Head(in_channels=[f.shape[1] for f in feats], anchors=anchors,
                      anchor_masks=masks, num_classes=num_classes, loss=loss)
    for i, conv in enumerate(head.yolo_outputs):
        conv.weight.set_value(case[f"weight{i}"])
        conv.bias.set_value(case[f"bias{i}"])
    head.train()
    out = head(feats, targets)
    for k, v in out.items():
        results[f"{variant}/{k}"] = float(v)
np.savez(sys.argv[2], **results)
"""


def reference_config(name: str, path: Path) -> None:
    """Our _base_ model section minus our one extra key (YOLOv3FPN.base_channels)."""
    text = (REPO / "configs" / "_base_" / f"{name}.yml").read_text()
    text = re.sub(r"YOLOv3FPN:\n  base_channels: 512\n\n", "", text)
    assert "base_channels" not in text
    path.write_text(text)


def fixed_inputs(size: int, seed: int) -> dict[str, np.ndarray]:
    """Three images resized to size x size: from 320x320 and 640x400 (im_shape / scale_factor
    is exact), and from 437x462, where float32 gives 436.99997 x 461.99997."""
    rng = np.random.default_rng(seed)
    originals = np.array([[320, 320], [640, 400], [437, 462]], "float32")
    return {
        "image": rng.normal(0, 1, (3, 3, size, size)).astype("float32"),
        "im_shape": np.full((3, 2), size, "float32"),
        "scale_factor": (np.float32(size) / originals).astype("float32"),
    }


def compare(name: str, ref_python: str, size: int, seed: int, work: Path) -> bool:
    work.mkdir(parents=True, exist_ok=True)
    reference_config(name, work / "reference.yml")
    inputs = fixed_inputs(size, seed)
    np.savez(work / "inputs.npz", **inputs)
    (work / "reference_run.py").write_text(REFERENCE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [ref_python, "reference_run.py", "reference.yml", "inputs.npz", ".", str(seed)]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit(f"{name}: the reference script failed")
    print(run.stdout.strip())

    cfg = load_config(str(REPO / "configs" / "_base_" / f"{name}.yml"))
    model = create(cfg["architecture"], cfg[cfg["architecture"]], cfg=cfg)
    # the same strict, code-free loader that tools/eval.py and tools/infer.py use
    report = load_weights(model, str(work / "model.pdparams"), strict=True)
    missing, unused = report.missing, report.unused
    model.eval()
    out = model.predict({k: paddle.to_tensor(v) for k, v in inputs.items()})
    ours = {"bbox": out["bbox"].numpy(), "bbox_num": out["bbox_num"].numpy()}
    ref = dict(np.load(work / "reference.npz"))

    same_num = np.array_equal(ours["bbox_num"], ref["bbox_num"])
    print(f"ours: bbox {ours['bbox'].shape}, bbox_num {ours['bbox_num'].tolist()}")
    ok = same_num and not missing and not unused
    if not same_num:
        print(f"{name}: DIFFERENT bbox_num\n")
        return False
    # PaddleDetection truncates im_shape / scale_factor to int, we round: images whose
    # quotient is not exact (image 2) get a 1 px larger image, boxes scaled by up to 1 px.
    exact = np.floor(inputs["im_shape"] / inputs["scale_factor"]) == np.floor(
        inputs["im_shape"] / inputs["scale_factor"] + 0.5
    )
    image_of_row = np.repeat(np.arange(len(ours["bbox_num"])), ours["bbox_num"])
    diff = np.abs(ours["bbox"] - ref["bbox"])  # [N, 6]
    for b, is_exact in enumerate(exact.all(axis=1)):
        d = diff[image_of_row == b]
        print(
            f"  image {b} ({'exact' if is_exact else 'inexact'} original size): max |diff| "
            f"class {d[:, 0].max(initial=0):.3g}, score {d[:, 1].max(initial=0):.3g}, "
            f"box {d[:, 2:].max(initial=0):.3g} px"
        )
        box_tol = 1e-3 if is_exact else 1.5
        ok = ok and d[:, 0].max(initial=0) == 0 and d[:, 1].max(initial=0) < 1e-5
        ok = ok and d[:, 2:].max(initial=0) < box_tol
    print(f"{name}: {'MATCH' if ok else 'DIFFERENT'}\n")
    return ok


# (name, YOLOv3Loss arguments); ignore_thresh 0.4 makes ~15 predictions of this case ignored
LOSS_VARIANTS = [
    ("plain", {}),
    ("label_smooth", {"label_smooth": True}),
    ("scale_x_y", {"scale_x_y": 1.05}),
    ("ignore_0.4", {"ignore_thresh": 0.4}),
]


def loss_case(seed: int) -> dict[str, np.ndarray]:
    """Random head inputs/weights and gt for 2 images of 128 px, 3 classes; image 0 has two
    boxes in the same cell and anchor (the later one is the target), image 1 one padding row."""
    rng = np.random.default_rng(seed)
    in_channels, grids = [16, 8, 4], [4, 8, 16]
    case = {
        "anchors": np.array(
            [
                [6, 8],
                [10, 20],
                [20, 15],
                [19, 38],
                [39, 28],
                [37, 74],
                [73, 56],
                [98, 124],
                [113, 113],
            ],
            "int64",
        ),
        "anchor_masks": np.array([[6, 7, 8], [3, 4, 5], [0, 1, 2]], "int64"),
        "downsample": np.array([32, 16, 8], "int64"),
        "num_classes": np.array(3),
        "image_shape": np.array([2, 3, 128, 128]),
        "gt_bbox": np.array(
            [
                [[10, 12, 60, 70], [11, 13, 61, 71], [70, 30, 126, 120], [40, 80, 52, 95]],
                [[5, 5, 100, 110], [30, 40, 45, 50], [64, 64, 80, 90], [0, 0, 0, 0]],
            ],
            "float32",
        ),
        "gt_class": np.array([[[0], [2], [1], [2]], [[1], [0], [2], [0]]], "int32"),
        "gt_score": rng.uniform(0.5, 1.0, (2, 4, 1)).astype("float32"),
        "pad_gt_mask": np.array([[[1], [1], [1], [1]], [[1], [1], [1], [0]]], "float32"),
    }
    for i, (channels, grid) in enumerate(zip(in_channels, grids)):
        case[f"feat{i}"] = rng.normal(0, 1, (2, channels, grid, grid)).astype("float32")
        case[f"weight{i}"] = rng.normal(0, 0.3, (3 * 8, channels, 1, 1)).astype("float32")
        case[f"bias{i}"] = rng.normal(0, 0.3, (3 * 8,)).astype("float32")
    return case


def compare_loss(ref_python: str, seed: int, work: Path) -> bool:
    """Our YOLOv3Loss (own targets) against PaddleDetection's (Gt2YoloTarget targets)."""
    from ppdet.modeling.heads import YOLOv3Head
    from ppdet.modeling.losses import YOLOv3Loss

    work.mkdir(parents=True, exist_ok=True)
    case = loss_case(seed)
    np.savez(work / "case.npz", **case)
    (work / "reference_loss.py").write_text(REFERENCE_LOSS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [ref_python, "reference_loss.py", "case.npz", "reference_loss.npz"]
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit("loss: the reference script failed")
    ref = dict(np.load(work / "reference_loss.npz"))

    feats = [paddle.to_tensor(case[f"feat{i}"]) for i in range(3)]
    batch = {
        "image": paddle.zeros(case["image_shape"].tolist()),
        **{
            k: paddle.to_tensor(case[k]) for k in ("gt_bbox", "gt_class", "gt_score", "pad_gt_mask")
        },
    }
    ok = True
    for variant, kwargs in LOSS_VARIANTS:
        head = YOLOv3Head(
            anchors=case["anchors"].tolist(),
            anchor_masks=case["anchor_masks"].tolist(),
            num_classes=int(case["num_classes"]),
            loss=YOLOv3Loss(downsample=case["downsample"].tolist(), **kwargs),
            in_channels=[f.shape[1] for f in feats],
        )
        for i, conv in enumerate(head.yolo_outputs):
            conv.weight.set_value(case[f"weight{i}"])
            conv.bias.set_value(case[f"bias{i}"])
        ours = {k: float(v) for k, v in head.get_loss(head(feats), batch).items()}
        parts = []
        for name, value in sorted(ours.items()):
            theirs = ref.get(f"{variant}/{name}")
            rel = abs(value - theirs) / max(abs(theirs), 1e-12) if theirs is not None else np.inf
            ok = ok and rel < 1e-4
            parts.append(f"{name} {value:.5f} vs {theirs:.5f} (rel {rel:.1e})")
        print(f"  loss [{variant}]: " + "; ".join(parts))
    print(f"loss: {'MATCH' if ok else 'DIFFERENT'}\n")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-python", default="/tmp/refvenv/bin/python")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--size", type=int, default=320, help="input size, a multiple of 32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-loss", action="store_true", help="only compare detections")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ppdet_oracle_") as tmp:
        results = [
            compare(name, args.ref_python, args.size, args.seed, Path(tmp) / name)
            for name in args.models
        ]
        if not args.skip_loss:
            results.append(compare_loss(args.ref_python, args.seed, Path(tmp) / "loss"))
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
