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

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402  (also puts the repository on sys.path)

import ppdet  # noqa: E402

REPO = oracle.REPO
DETERMINISTIC = oracle.DETERMINISTIC
# (case name, _base_ config, background-logit bias shift: larger = fewer detections)
CASES = (
    ("r50_fpn", "faster_rcnn_r50_fpn", 0.0),
    ("r50_fpn_sparse", "faster_rcnn_r50_fpn", 6.0),
    ("r50_c4", "faster_rcnn_r50", 0.0),
)

# Runs under the reference interpreter: argv = config, work dir, seed, background shift.
REFERENCE_SCRIPT = (
    oracle.SCRIPT_IMPORTS
    + oracle.CONCAT_0D_PATCH
    + """
config, out_dir, seed, shift = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
cfg = load_config(config)
"""
    + oracle.RCNN_DETERMINISTIC
    + "model = create(cfg.architecture)\n"
    + oracle.fill_weights(
        '    if name == "bbox_head.bbox_score.bias":\n        value[-1] += shift\n', linear=True
    )
    + oracle.EVAL_BOXES
    + oracle.train_list_gt("round(float(v), 6)")
)
# the shared input helpers, under their old names here (compare_cascade_rcnn.py uses them)
fixed_inputs, padded_gt, strip_reference = (
    oracle.fixed_inputs,
    oracle.padded_gt,
    oracle.strip_reference,
)


def compare(case: str, base: str, shift: float, ref_python: str, seed: int, work: Path) -> bool:
    oracle.copy_configs(work, base)
    inputs = fixed_inputs(seed)
    np.savez(work / "inputs.npz", **inputs)
    args = [f"{base}.yml", ".", str(seed), str(shift)]
    ref = oracle.run_reference(case, work, REFERENCE_SCRIPT, args, ref_python)
    ref_bbox, ref_num = strip_reference(ref["bbox"], ref["bbox_num"])

    overrides = [f"{k}={str(v).lower()}" for k, v in DETERMINISTIC.items()]
    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{base}.yml"), overrides)
    model, ok, batch, out = oracle.load_and_detect(cfg, work, inputs)
    bbox, bbox_num = out["bbox"].numpy(), out["bbox_num"].numpy()
    print(
        f"ours: bbox {bbox.shape}, bbox_num {bbox_num.tolist()} (reference without fake/-1 "
        f"rows: {ref_num.tolist()})"
    )
    if not np.array_equal(bbox_num, ref_num):
        print(f"{case}: DIFFERENT bbox_num\n")
        return False
    ok = oracle.boxes_match(bbox, ref_bbox, 1e-3) and ok

    model.train()
    losses = model.losses({**batch, **padded_gt(inputs)})
    names = ("loss", "loss_rpn_cls", "loss_rpn_reg", "loss_bbox_cls", "loss_bbox_reg")
    ok = oracle.losses_match(names, losses, ref) and ok
    return oracle.verdict(case, ok)


def main() -> None:
    oracle.main(__doc__, CASES, compare, "ppdet_frcnn_oracle_")


if __name__ == "__main__":
    main()
