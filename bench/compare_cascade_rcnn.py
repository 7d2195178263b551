"""Check that PaddleDetection 2.6 Cascade R-CNN weights give the same detections and losses here.

The approach of ``bench/compare_faster_rcnn.py``, whose reference script this reuses (shared
helpers: ``bench/oracle.py``): the reference package (``paddledet==2.6.0`` in its own venv)
builds its CascadeRCNN from our ``configs/_base_/cascade_rcnn_r50_fpn.yml`` (2.x keys and
values), fills every parameter and BN statistic with random values, saves the ``.pdparams``
and records ``bbox``/``bbox_num`` on a fixed 2-image batch and the training losses on fixed
ground truth with deterministic sampling (``use_random: false``). We load the file strictly
into our model and compare the detections and all eight losses (RPN 2, three stages x 2, total).

    .venv/bin/python bench/compare_cascade_rcnn.py [--ref-python /tmp/refvenv/bin/python]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_faster_rcnn as frcnn  # noqa: E402  (also puts the repository on sys.path)
import oracle  # noqa: E402

import ppdet  # noqa: E402

REPO = oracle.REPO
BASE = "cascade_rcnn_r50_fpn"
# (case name, background-logit bias shift on every stage: larger = fewer detections, scale of
# the stages' delta weights: small = refined boxes stay near their RoIs, so stage 2 (IoU 0.7)
# has foreground RoIs and a regression loss)
CASES = (
    ("r50_fpn", 0.0, 1.0),
    ("r50_fpn_sparse", 16.0, 1.0),
    ("r50_fpn_empty", 25.0, 1.0),
    ("r50_fpn_small_deltas", 0.0, 0.05),
)
LOSSES = ("loss", "loss_rpn_cls", "loss_rpn_reg") + tuple(
    f"loss_bbox_{kind}_stage{k}" for k in range(3) for kind in ("cls", "reg")
)

_SHIFT_LINE = 'if name == "bbox_head.bbox_score.bias":'
assert _SHIFT_LINE in frcnn.REFERENCE_SCRIPT, "compare_faster_rcnn.REFERENCE_SCRIPT changed"


def reference_script(delta_scale: float) -> str:
    """The Faster R-CNN reference script with the background shift applied to every stage's
    score bias and the stages' delta weights scaled by ``delta_scale``."""
    return frcnn.REFERENCE_SCRIPT.replace(
        _SHIFT_LINE,
        f'if name.startswith("bbox_head.bbox_delta_stage"):\n'
        f"        value = value * {delta_scale!r}\n"
        '    if name.startswith("bbox_head.bbox_score_stage") and name.endswith(".bias"):',
    )


def compare(
    case: str, shift: float, delta_scale: float, ref_python: str, seed: int, work: Path
) -> bool:
    oracle.copy_configs(work, BASE)
    inputs = oracle.fixed_inputs(seed)
    np.savez(work / "inputs.npz", **inputs)
    args = [f"{BASE}.yml", ".", str(seed), str(shift)]
    ref = oracle.run_reference(case, work, reference_script(delta_scale), args, ref_python)
    ref_bbox, ref_num = oracle.strip_reference(ref["bbox"], ref["bbox_num"])

    overrides = [f"{k}={str(v).lower()}" for k, v in oracle.DETERMINISTIC.items()]
    cfg = ppdet.load_config(str(REPO / "configs" / "_base_" / f"{BASE}.yml"), overrides)
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
    losses = model.losses({**batch, **oracle.padded_gt(inputs)})
    ref_names = sorted(set(ref) - {"bbox", "bbox_num"})
    if sorted(losses) != ref_names or ref_names != sorted(LOSSES):
        print(f"{case}: DIFFERENT loss names: ours {sorted(losses)}, reference {ref_names}\n")
        return False
    ok = oracle.losses_match(LOSSES, losses, ref) and ok
    return oracle.verdict(case, ok)


def main() -> None:
    oracle.main(__doc__, CASES, compare, "ppdet_cascade_oracle_")


if __name__ == "__main__":
    main()
