"""Check that PaddleDetection 2.6 SSD / SSDLite weights give the same detections and losses here.

The reference package (``paddledet==2.6.0``, set up as in ``bench/oracle.py``)
runs as a black box in its own interpreter: a small script builds PaddleDetection's SSD
through its own config machinery from our ``configs/_base_/ssd*.yml`` (same keys and values as
2.x's), gives every parameter and BN statistic random values, saves the ``.pdparams``, and
records ``bbox``/``bbox_num`` on a fixed 2-image batch (different scale factors, one of them
not an integer ratio) and the training loss on fixed ground truth (2.x takes it normalised to
the image and zero padded; we take input pixels with ``pad_gt_mask``). We load the file
strictly into our model, built through our config system, and compare.

The background logit bias is raised by ``shift`` per case: 0 gives 200 detections per image
(keep_top_k decides: every class clears the 0.01 score threshold), 5.3 fewer (the threshold
decides). SSDLite's predictors have no bias (``pw_conv``), so it runs the dense case only.
The ground truth avoids prior 0 as a best prior, where 2.x differs on purpose (see
``ppdet/modeling/losses/ssd_loss.py``).

    .venv/bin/python bench/compare_ssd.py [--ref-python /tmp/refvenv/bin/python] [--cases ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402  (also puts the repository on sys.path)
import paddle  # noqa: E402

import ppdet  # noqa: E402

REPO = oracle.REPO
# (case name, _base_ config, num_classes, input size, background-bias shift)
CASES = (
    ("mbv1_dense", "ssd_mobilenet_v1_300", 20, 300, 0.0),
    ("mbv1_sparse", "ssd_mobilenet_v1_300", 20, 300, 5.3),
    ("vgg16_dense", "ssd_vgg16_300", 20, 300, 0.0),
    ("ssdlite_dense", "ssdlite_mobilenet_v3_large_320", 80, 320, 0.0),
)

# Runs under the reference interpreter: argv = config, work dir, seed, background shift.
# random weights (LeCun-normal convs, BN near identity, small biases); the background logit
# bias (channel p * (C + 1) + C of every scores conv) raised by `shift`
_SHIFT = """\
    if name.startswith("ssd_head.scores") and name.endswith(".bias") and ".bn." not in name:
        value = value.reshape(-1, num_classes + 1)
        value[:, -1] += shift
        value = value.reshape(shape)
"""
REFERENCE_SCRIPT = (
    oracle.SCRIPT_IMPORTS
    + r"""
# 2.6.0's hard-negative mining compares an int64 rank with a float32 count, which paddle 3
# refuses; let "<" promote the integer side (the values are small integers, exact in float32)
_lt = paddle.Tensor.__lt__
def _promoting_lt(x, y):
    if isinstance(y, paddle.Tensor) and x.dtype != y.dtype and not x.is_floating_point():
        x = x.astype(y.dtype)
    return _lt(x, y)
paddle.Tensor.__lt__ = _promoting_lt

config, out_dir, seed, shift = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
cfg = load_config(config)
model = create(cfg.architecture)
num_classes = cfg.num_classes
"""
    + oracle.fill_weights(_SHIFT)
    + oracle.EVAL_BOXES
    + r"""
model.train()
size = inputs["image"].shape[2]
batch["gt_bbox"] = paddle.to_tensor(inputs["gt_bbox"] / size)  # normalised, zero padded
batch["gt_class"] = paddle.to_tensor(inputs["gt_class"][..., 0])  # 2.x: [B, M]
losses = model(batch)
result.update({k: v.numpy() for k, v in losses.items()})
print("reference:", {k: float(v) for k, v in losses.items()})
np.savez(f"{out_dir}/reference.npz", **result)
"""
)


def fixed_inputs(seed: int, size: int) -> dict[str, np.ndarray]:
    """2 square images of ``size`` (no keep-ratio resize: different h/w scales), padded gt in
    input pixels (3 boxes, 1 box) with ``pad_gt_mask``."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1, (2, 3, size, size)).astype("float32")
    s = size / 300.0
    gt_bbox = np.zeros((2, 3, 4), "float32")
    gt_bbox[0] = np.array([[40, 60, 140, 200], [150, 30, 290, 250], [20, 220, 70, 280]]) * s
    gt_bbox[1, 0] = np.array([60, 80, 240, 230]) * s
    gt_class = np.zeros((2, 3, 1), "int32")
    gt_class[0, :, 0] = [3, 17, 0]
    gt_class[1, 0, 0] = 11
    mask = np.zeros((2, 3, 1), "float32")
    mask[0] = 1
    mask[1, 0] = 1
    return {
        "image": image,
        "im_shape": np.array([[size, size], [size, size]], "float32"),
        "scale_factor": np.array([[size / 375, size / 500], [size / 427, size / 640]], "float32"),
        "gt_bbox": gt_bbox,
        "gt_class": gt_class,
        "pad_gt_mask": mask,
    }


def compare(
    case: str,
    base: str,
    num_classes: int,
    size: int,
    shift: float,
    ref_python: str,
    seed: int,
    work: Path,
) -> bool:
    oracle.copy_configs(work, base)
    (work / "case.yml").write_text(f"_BASE_: [{base}.yml]\nnum_classes: {num_classes}\n")
    inputs = fixed_inputs(seed, size)
    np.savez(work / "inputs.npz", **inputs)
    args = ["case.yml", ".", str(seed), str(shift)]
    ref = oracle.run_reference(case, work, REFERENCE_SCRIPT, args, ref_python)

    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{base}.yml"))
    cfg["num_classes"] = num_classes
    model, ok, _, out = oracle.load_and_detect(cfg, work, inputs)
    bbox, bbox_num = out["bbox"].numpy(), out["bbox_num"].numpy()
    print(f"ours: bbox {bbox.shape}, bbox_num {bbox_num.tolist()}")
    if not np.array_equal(bbox_num, ref["bbox_num"]):
        print(f"{case}: DIFFERENT bbox_num\n")
        return False
    ok = oracle.boxes_match(bbox, ref["bbox"], 1e-2) and ok

    model.train()
    losses = model.losses({k: paddle.to_tensor(v) for k, v in inputs.items()})
    ours, theirs = float(losses["loss"]), float(ref["loss"])
    rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
    ok = ok and rel < 1e-4
    print(
        f"  loss {ours:.5f} vs {theirs:.5f} (rel {rel:.1e}); ours: loss_conf "
        f"{float(losses['loss_conf']):.5f}, loss_loc {float(losses['loss_loc']):.5f}"
    )
    return oracle.verdict(case, ok)


def main() -> None:
    oracle.main(__doc__, CASES, compare, "ppdet_ssd_oracle_")


if __name__ == "__main__":
    main()
