"""Checks shared by the detector tests (RetinaNet, SSD, Faster/Cascade/Mask R-CNN).

A plain helper module (no tests here): a few Adam steps on a fixed batch, the
tools/train.py -> eval.py -> infer.py run on the tiny demo set, and the eval-output format
checks every detector's `{"bbox": [N, 6], "bbox_num": [B]}` must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle

from tests.conftest import ROOT

EVAL_KEYS = ("image", "im_shape", "scale_factor")


def state_lines(model) -> list[str]:
    """``name<TAB>[shape]<TAB>dtype`` of every parameter and buffer, sorted: the layout of the
    name lists in tests/fixtures/compat/."""
    return sorted(
        f"{k}\t{list(v.shape)}\t{str(v.dtype).split('.')[-1]}"
        for k, v in model.state_dict().items()
    )


def eval_inputs(batch: dict) -> dict:
    """The inputs of `batch` an eval forward reads (image, im_shape, scale_factor)."""
    return {k: v for k, v in batch.items() if k in EVAL_KEYS}


def predict(model, batch: dict) -> dict:
    """`model` in eval mode: `model.predict(batch)` (forward + postprocess, no gradients)."""
    model.eval()
    return model.predict(batch)


def train_steps(
    model, batch: dict, steps: int, lr: float = 1e-3, keys: tuple[str, ...] = ("loss",)
) -> dict[str, list[float]]:
    """Train `steps` Adam steps (learning rate `lr`) on one fixed batch, minimising "loss".

    Returns each loss named in `keys` as recorded before every step (a list of `steps` floats).
    """
    model.train()
    opt = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters())
    history: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(steps):
        losses = model.losses(batch)
        for k in keys:
            history[k].append(float(losses[k]))
        losses["loss"].backward()
        opt.step()
        opt.clear_grad()
    return history


def assert_loss_drops(history: list[float], factor: float = 0.7) -> None:
    """Every loss is finite and the last is below `factor` times the first."""
    assert all(np.isfinite(history)) and history[-1] < factor * history[0], history


def check_detections(out: dict, per_image: list[int], num_classes: int) -> np.ndarray:
    """Eval output format: float32 `bbox` [sum(bbox_num), 6] rows (class, score, x1, y1, x2, y2),
    int32 `bbox_num` equal to `per_image`, class ids below `num_classes`, scores in [0, 1),
    boxes with x2 > x1 and y2 > y1. Returns the bbox rows as NumPy."""
    bbox, num = out["bbox"].numpy(), out["bbox_num"].numpy()
    assert bbox.dtype == np.float32 and num.dtype == np.int32 and bbox.shape == (num.sum(), 6)
    assert num.tolist() == list(per_image)
    assert set(np.unique(bbox[:, 0])) <= {float(c) for c in range(num_classes)}
    assert ((bbox[:, 1] >= 0) & (bbox[:, 1] < 1)).all()
    assert (bbox[:, 4] > bbox[:, 2]).all() and (bbox[:, 5] > bbox[:, 3]).all()
    return bbox


def check_no_detections(out: dict, batch_size: int) -> None:
    """A score threshold nothing passes: `bbox` is [0, 6] and every `bbox_num` is 0."""
    assert out["bbox"].shape == [0, 6] and out["bbox_num"].numpy().tolist() == [0] * batch_size


def demo_overrides(
    tiny_demo_data: str, save_dir: str | Path, fmt: str = "coco", size: int = 64
) -> list[str]:
    """-o overrides for a one-epoch run (batch 4, `size` x `size` images) on the tiny demo set.

    `fmt` "coco" reads tiny_demo_data/coco (test labels from instances_val.json), "voc" reads
    tiny_demo_data/voc (test labels from label_list.txt); checkpoints go under `save_dir`.
    """
    data = os.path.join(tiny_demo_data, fmt)
    anno = f"{data}/annotations/instances_val.json" if fmt == "coco" else f"{data}/label_list.txt"
    return [
        f"TrainDataset.dataset_dir={data}",
        f"EvalDataset.dataset_dir={data}",
        f"TestDataset.anno_path={anno}",
        f"save_dir={save_dir}",
        "epoch=1",
        "snapshot_epoch=1",
        "log_iter=1",
        "TrainReader.batch_size=4",
        "LearningRate.schedulers.0.max_epochs=1",
        "LearningRate.schedulers.1.steps=1",
        *(
            f"{r}.sample_transforms.Resize.target_size=[{size}, {size}]"
            for r in ("TrainReader", "EvalReader", "TestReader")
        ),
    ]


def run_tools(
    config: str, opts: list[str], tiny_demo_data: str, tmp_path: Path, run_name: str
) -> dict:
    """Run tools/train.py, then eval.py and infer.py on its tmp_path/out/<run_name>/model_final.

    Each tool must exit 0. infer.py writes tmp_path/infer/bbox.json for the 2 sample images;
    each detection must hold 4 box numbers and a score in [0, 1].
    Returns {"train": stdout, "eval": stdout, "results": the parsed bbox.json}.
    """
    opts = list(opts)
    env = dict(os.environ, PYTHONWARNINGS="ignore")

    def tool(name: str, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", name), "-c", config, "-o", *opts, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert proc.returncode == 0, f"{name}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    train_out = tool("train.py")
    opts.append(f"weights={tmp_path / 'out' / run_name / 'model_final'}")
    eval_out = tool("eval.py")
    infer_dir = tmp_path / "infer"
    tool(
        "infer.py",
        "--draw_threshold",
        "0.0",
        "--infer_dir",
        os.path.join(tiny_demo_data, "samples"),
        "--output_dir",
        str(infer_dir),
    )
    results = json.loads((infer_dir / "bbox.json").read_text())
    assert len(results) == 2
    for det in (d for r in results for d in r["detections"]):
        assert len(det["bbox"]) == 4 and 0.0 <= det["score"] <= 1.0
    return {"train": train_out, "eval": eval_out, "results": results}


def check_boxes_in_images(bbox: np.ndarray, size: int, first: int) -> None:
    """Rows of a 2-image batch of `size` x `size` inputs whose image 1 was downscaled by 2: the
    first `first` rows (image 0) lie in [0, size], the rest in the 2*size original, past size."""
    assert bbox[:first, 2:].min() >= 0 and bbox[:first, 2:].max() <= size
    assert bbox[first:, 2:].max() <= 2 * size and bbox[first:, 2:].max() > size


def tiny_detector(config: str, overrides: list[str], seed: int = 0):
    """The model of ``config`` with ``overrides``, its random init seeded."""
    import ppdet

    paddle.seed(seed)
    return ppdet.build_model(ppdet.load_config(config, list(overrides)))


def rcnn_batch(size: int) -> dict:
    """A fixed 2-image training batch: [2, 3, size, size] noise, image 1 downscaled by 2 from
    its original; 2 and 1 real boxes (classes 0, 2 and 1), padded to M = 2."""
    rng = np.random.default_rng(0)
    T = paddle.to_tensor
    return {
        "image": T(rng.normal(size=(2, 3, size, size)), "float32"),
        "im_shape": T([[size, size]] * 2, "float32"),
        "scale_factor": T([[1.0, 1.0], [0.5, 0.5]], "float32"),
        "gt_bbox": T(
            [[[10, 10, 50, 60], [40, 30, 90, 90]], [[5, 50, 40, 90], [0, 0, 0, 0]]], "float32"
        ),
        "gt_class": T([[[0], [2]], [[1], [0]]], "int32"),
        "pad_gt_mask": T([[[1], [1]], [[1], [0]]], "float32"),
    }
