"""Check that PaddleDetection 2.6 RetinaNet weights give the same detections and losses here.

The reference package (``paddledet==2.6.0``, set up as in ``bench/oracle.py``)
runs as a black box in its own interpreter: a small script builds PaddleDetection's
RetinaNet through its own config machinery from our ``configs/_base_/retinanet_*.yml`` (same
keys and values as 2.x's), gives every parameter and BN statistic random values, saves the
``.pdparams``, and records ``bbox``/``bbox_num`` on a fixed 2-image batch (different sizes,
one zero-padded, different scale factors) and the training losses on fixed ground truth.
We load the file strictly into our model, built through our config system, and compare.

The class-logit bias is lowered by ``shift`` per case: 3 gives 100 detections per image,
11 only a few (the 0.05 score threshold decides).

    .venv/bin/python bench/compare_retinanet.py [--ref-python /tmp/refvenv/bin/python]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402  (also puts the repository on sys.path)

import ppdet  # noqa: E402

REPO = oracle.REPO
# (case name, _base_ config, class-bias shift, conv weight gain: R101 is twice as deep, a
# smaller gain keeps its scores away from 1.0, where ties would make the row order arbitrary)
CASES = (
    ("r50_dense", "retinanet_r50_fpn", 3.0, 1.0),
    ("r50_sparse", "retinanet_r50_fpn", 11.0, 1.0),
    ("r101_dense", "retinanet_r101_fpn", 3.0, 0.8),
)

# Runs under the reference interpreter: argv = config, work dir, seed, class-bias shift, gain.
# random weights: LeCun-normal convs times gain (activations stay O(1) through the deep net),
# BN near identity, small biases; the class bias lowered by `shift`
REFERENCE_SCRIPT = (
    oracle.SCRIPT_IMPORTS
    + """
config, out_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
shift, gain = float(sys.argv[4]), float(sys.argv[5])
cfg = load_config(config)
model = create(cfg.architecture)
"""
    + oracle.fill_weights(
        '    if name == "head.retina_cls.bias":\n        value = value - shift\n', gain="gain"
    )
    + oracle.EVAL_BOXES
    + oracle.train_list_gt("float(v)")
)


def compare(
    case: str, base: str, shift: float, gain: float, ref_python: str, seed: int, work: Path
) -> bool:
    oracle.copy_configs(work, "retinanet_r50_fpn", base)  # the r101 file includes the r50 one
    inputs = oracle.fixed_inputs(seed)
    np.savez(work / "inputs.npz", **inputs)
    args = [f"{base}.yml", ".", str(seed), str(shift), str(gain)]
    ref = oracle.run_reference(case, work, REFERENCE_SCRIPT, args, ref_python)

    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{base}.yml"))
    model, ok, batch, out = oracle.load_and_detect(cfg, work, inputs)
    bbox, bbox_num = out["bbox"].numpy(), out["bbox_num"].numpy()
    print(f"ours: bbox {bbox.shape}, bbox_num {bbox_num.tolist()}")
    if not np.array_equal(bbox_num, ref["bbox_num"]):
        print(f"{case}: DIFFERENT bbox_num\n")
        return False
    ok = oracle.boxes_match(bbox, ref["bbox"], 1e-5, relative=True) and ok

    model.train()
    losses = model.losses({**batch, **oracle.padded_gt(inputs)})
    ok = oracle.losses_match(("loss", "loss_cls", "loss_reg"), losses, ref, sep="; ") and ok
    return oracle.verdict(case, ok)


def main() -> None:
    oracle.main(__doc__, CASES, compare, "ppdet_retina_oracle_")


if __name__ == "__main__":
    main()
