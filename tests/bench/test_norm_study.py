"""bench/norm_study.py: its config builds and trains, the overrides select each variant's
parts, and the table's seed-spread verdicts follow the recorded numbers."""

from __future__ import annotations

import paddle

import ppdet
from bench import norm_study
from ppdet.modeling.layers.norms import EvoNorm
from tests.modeling.detector_checks import assert_loss_drops, train_steps
from tests.modeling.test_recipe_configs import first_batch


def test_compare_needs_disjoint_seed_ranges():
    base = [0.70, 0.74]
    assert norm_study.compare([0.75, 0.80], base) == "above"
    assert norm_study.compare([0.60, 0.69], base) == "below"
    assert norm_study.compare([0.73, 0.90], base) == "within"  # overlaps at 0.73-0.74


def test_render_mean_spread_and_verdicts():
    def run(name, seed, ap50):
        return {"AP50": ap50, "AP": ap50 / 2, "train_s": 100.0, "eval_s": 5.0}

    names = [v[0] for v in norm_study.VARIANTS]
    values = {names[0]: (0.70, 0.74), names[1]: (0.80, 0.76), names[2]: (0.72, 0.60)}
    data = {"runs": {}, "load": []}
    for name, pair in values.items():
        for seed, ap50 in zip((0, 1), pair):
            data["runs"][norm_study._key(name, seed, 50)] = run(name, seed, ap50)
    table, summary = norm_study.render(data, steps=50, seeds=[0, 1])
    rows = table.splitlines()[2:]
    assert len(rows) == 3
    assert "| 0.700 / 0.740 | 0.720 | 0.040 |" in rows[0] and "| baseline |" in rows[0]
    assert "| 0.800 / 0.760 | 0.780 | 0.040 |" in rows[1] and "| above |" in rows[1]
    assert "| within |" in rows[2]
    assert f"above the baseline's over all seeds: {names[1]}" in summary
    assert f"no difference shown): {names[2]}" in summary


def test_study_config_builds_each_variant_and_trains(tiny_demo_data, tmp_path, monkeypatch):
    monkeypatch.setattr(norm_study, "DEMO", tiny_demo_data)
    for _name, fpn_norm, head_norm, loss in (norm_study.VARIANTS[0], norm_study.VARIANTS[-1]):
        opts = norm_study.overrides(fpn_norm, head_norm, loss, 20, 0, str(tmp_path))
        cfg = ppdet.load_config(norm_study.CONFIG, opts + ["TrainReader.batch_size=2"])
        assert cfg["max_iters"] == 20 and cfg["LearningRate"]["base_lr"] == 0.001
        assert cfg["LearningRate"]["schedulers"][1]["steps"] == 2  # 100 of 1200, scaled
        paddle.seed(0)
        model = ppdet.build_model(cfg)
        towers = model.head.conv_feat.fcos_head_cls_tower_conv_0
        assert isinstance(getattr(towers, "norm", None), EvoNorm) == (head_norm is not None)
        assert model.backbone.out_strides == [8, 16, 32] and len(model.neck.out_channels) == 4
        batch = first_batch(cfg)
        assert_loss_drops(train_steps(model, batch, steps=6, lr=2e-3)["loss"], factor=0.9)
