"""v0.1 C4 Mask R-CNN (configs/mask_rcnn_r50_1x.yml, shrunk) under Paddle Inference: oneDNN's
detections against eager's, and why they are not within the usual 1e-4 in score.

Measured on Paddle 3.1.1 with this model (seeded random weights, ResNet-50 C4, 96x128 input,
MKL_DEBUG_CPU_TYPE=5), by running the network's intermediate outputs through each path:

- Paddle Inference with its plain CPU kernels gives eager's numbers bit for bit, IR passes on or
  off. With oneDNN, IR passes on or off give the same numbers, so no fused pass is at fault; the
  C4 feature map differs from eager's by 1.5e-3 at magnitudes ~1e3 (1.7e-6 relative: oneDNN's
  convolution sums in another order than Paddle's im2col + MKL GEMM).
- An untrained C4 network amplifies that: its affine-channel norms do not normalise, so the C4
  features reach ~1e3 and the RPN deltas ~1e2. A delta error of ~3e-4 times anchor sizes up to
  512 px moves proposals by up to 0.035 px; the RoI class scores move by up to 2.4e-4 (one
  image of three over 1e-4, as seen before), and two proposals with tied (saturated)
  objectness can swap places in the proposal list (same set, other order).

So this is float32 rounding amplified by a badly conditioned untrained model, not a Paddle bug
or a pass. Trained weights keep deltas O(1) (the FPN tiny configs of test_export.py, and this
C4 model at depth 18, agree within 1e-6). The test pins: the exported graph on plain kernels
equals eager (1e-6), and oneDNN stays within 1e-3 in score and 0.1 px per box coordinate.
"""

from __future__ import annotations

import numpy as np

import ppdet
from ppdet.engine.predictor import Predictor as EagerPredictor
from ppdet.export import export_model
from ppdet.export.infer_cfg import read_infer_cfg
from ppdet.export.paddle_backend import PaddleSession
from ppdet.export.pipeline import Preprocess, unpack_results

from .conftest import CONFIGS, photo, tiny_model

OVERRIDES = [
    "num_classes=3",
    "BBoxPostProcess.nms.score_threshold=0.0",
    "BBoxPostProcess.nms.keep_top_k=10",
    "RPNHead.test_proposal.pre_nms_top_n=300",
    "RPNHead.test_proposal.post_nms_top_n=30",
    "TestReader.sample_transforms.Resize.target_size=[96, 128]",
]
SCORE_SCALE = 0.03  # class-score layer scaled down: scores spread over (0.3, 1), not all 1.0


def nearest_partner(row: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """(largest coordinate difference, score difference) to the closest same-class row of
    ``rows`` (by coordinates: the untrained model's boxes are often clipped flat to a border,
    where IoU means nothing)."""
    same = rows[rows[:, 0] == row[0]]
    assert len(same), f"no detection of class {row[0]}"
    dist = np.abs(same[:, 2:] - row[2:]).max(axis=1)
    j = int(np.argmin(dist + np.abs(same[:, 1] - row[1])))
    return float(dist[j]), float(abs(same[j, 1] - row[1]))


def test_v01_c4_mask_rcnn_onednn_within_pinned_tolerance(tmp_path):
    cfg = ppdet.load_config(str(CONFIGS / "mask_rcnn_r50_1x.yml"), OVERRIDES)
    model = tiny_model(cfg)
    for name, param in model.named_parameters():
        if "bbox_score" in name:
            param.set_value(param * SCORE_SCALE)
    out = export_model(cfg, "", tmp_path / "c4", model=model)
    info = read_infer_cfg(out / "infer_cfg.yml")
    assert info.outputs == ["bbox", "bbox_num", "mask"] and info.use_dynamic_shape

    images = [photo(120, 160, 0), photo(90, 70, 1)]
    eager, _ = EagerPredictor(cfg, "", model=model).predict(images)
    batches = list(Preprocess(cfg, batch_size=1)(images))
    files = (out / info.model_file, out / info.params_file)
    for use_onednn, box_tol, score_tol in [(False, 1e-4, 1e-6), (True, 0.1, 1e-3)]:
        session = PaddleSession(*files, threads=1, use_onednn=use_onednn)
        for (batch, items), want in zip(batches, eager):
            outputs = session.run({n: batch[n] for n in session.input_names})
            (got,) = unpack_results(dict(zip(info.outputs, outputs)), batch, items)
            assert len(got["bbox"]) == len(want["bbox"]) == 10
            for row in want["bbox"]:
                box_diff, score_diff = nearest_partner(row, got["bbox"])
                assert box_diff < box_tol and score_diff < score_tol, (use_onednn, row.tolist())
            assert got["mask"].shape == want["mask"].shape
        assert session.use_onednn == use_onednn  # no fallback
