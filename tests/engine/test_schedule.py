"""The schedule follows the total batch: the seed zoo's linear rule."""

import glob
import os

import pytest

import ppdet
from ppdet.engine.optim import build_lr
from ppdet.engine.schedule import plan_schedule
from ppdet.engine.trainer import Trainer
from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides

# Detectron 1x for a total batch of 16 (8 GPUs x 2 images)
DETECTRON_1X = {
    "reference_batch_size": 16,
    "max_iters": 90000,
    "snapshot_iter": 10000,
    "LearningRate": {
        "base_lr": 0.02,
        "schedulers": [
            {"name": "PiecewiseDecay", "gamma": 0.1, "milestones": [60000, 80000]},
            {"name": "LinearWarmup", "start_factor": 0.3333, "steps": 500},
        ],
    },
}


def test_halving_the_batch_halves_lr_and_doubles_iterations_and_milestones():
    plan = plan_schedule(DETECTRON_1X, batch_size=2, world_size=4)  # total 8
    assert plan.factor == 0.5
    assert plan.learning_rate["base_lr"] == pytest.approx(0.01)
    decay, warmup = plan.learning_rate["schedulers"]
    assert decay["milestones"] == [120000, 160000] and decay["gamma"] == 0.1
    assert warmup["steps"] == 1000 and warmup["start_factor"] == 0.3333
    assert plan.max_iters == 180000 and plan.snapshot_iter == 20000
    assert "total batch 8 (4 process(es) x 2 image(s))" in plan.message
    assert "base_lr 0.02 -> 0.01" in plan.message and "max_iters 90000 -> 180000" in plan.message
    # the LR the schedule gives: half of the reference's at every point, milestones doubled
    lr = build_lr(plan.learning_rate, steps_per_epoch=1, epoch_based=False)
    ref = build_lr(DETECTRON_1X["LearningRate"], steps_per_epoch=1, epoch_based=False)
    for t_ref in (0, 250, 1000, 70000, 85000):
        lr.last_epoch, ref.last_epoch = 2 * t_ref, t_ref
        assert lr.get_lr() == pytest.approx(ref.get_lr() / 2), t_ref


def test_accumulation_counts_in_the_total_batch():
    plan = plan_schedule(DETECTRON_1X, batch_size=2, world_size=2, accumulate_steps=4)
    assert plan.factor == 1.0 and plan.max_iters == 90000  # 2 x 2 x 4 = 16: as written
    assert "as written" in plan.message and "accumulation" in plan.message


def test_epoch_based_keeps_epochs_and_scales_lr_and_warmup():
    cfg = {
        "reference_batch_size": 64,
        "epoch": 270,
        "LearningRate": {
            "base_lr": 0.001,
            "schedulers": [
                {"name": "PiecewiseDecay", "milestones": [216, 243]},
                {"name": "LinearWarmup", "steps": 4000},
            ],
        },
    }
    plan = plan_schedule(cfg, batch_size=8, world_size=2)  # 16 of 64
    assert plan.learning_rate["base_lr"] == pytest.approx(0.00025)
    assert plan.learning_rate["schedulers"][0]["milestones"] == [216, 243]  # epochs
    assert plan.learning_rate["schedulers"][1]["steps"] == 16000
    assert plan.max_iters is None and "epochs unchanged" in plan.message


def test_defaults_are_scaled_too_and_cosine_counts_iterations():
    cfg = {
        "reference_batch_size": 16,
        "max_iters": 1000,
        "LearningRate": {
            "base_lr": 0.01,
            "schedulers": [{"name": "CosineDecay", "max_epochs": 1000}],
        },
    }
    plan = plan_schedule(cfg, batch_size=4, world_size=2)  # x0.5
    assert plan.learning_rate["schedulers"][0]["max_epochs"] == 2000
    defaults = plan_schedule({"reference_batch_size": 16, "epoch": 12}, batch_size=32)  # x2
    assert defaults.learning_rate["base_lr"] == pytest.approx(0.02)  # 2.6's default 0.01
    assert defaults.learning_rate["schedulers"][1]["steps"] == 250  # default warmup 500


def test_without_reference_or_with_scaling_off_the_config_is_used_as_written():
    plain = {k: v for k, v in DETECTRON_1X.items() if k != "reference_batch_size"}
    for plan in (
        plan_schedule(plain, batch_size=2),
        plan_schedule(DETECTRON_1X, batch_size=2, scale=False),
    ):
        assert plan.factor == 1.0 and plan.max_iters == 90000
        assert plan.learning_rate == DETECTRON_1X["LearningRate"]
    assert "states no reference_batch_size" in plan_schedule(plain, batch_size=2).message
    assert "--no-scale_schedule" in plan_schedule(DETECTRON_1X, 2, scale=False).message


@pytest.mark.parametrize("scale, steps", [(True, 4), (False, 2)])
def test_trainer_runs_the_scaled_schedule(scale, steps, tiny_demo_data, tmp_path, capsys):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path)) + [
        "epoch=null",
        "max_iters=2",
        "reference_batch_size=8",  # the tiny run's batch is 4: half
        "LearningRate.schedulers.0.max_epochs=2",
    ]
    trainer = Trainer(
        ppdet.load_config(DEMO_CONFIG, opts), output_dir=str(tmp_path), scale_schedule=scale
    )
    trainer.train()
    assert trainer.iteration == steps
    out = capsys.readouterr().out
    assert "schedule: total batch 4 (1 process(es) x 4 image(s))" in out
    assert ("max_iters 2 -> 4" in out) == scale


def test_a_config_without_reference_trains_as_written_with_one_note(
    tiny_demo_data, tmp_path, capsys
):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path)) + [
        "epoch=null",
        "max_iters=2",
        "reference_batch_size=null",
        "LearningRate.schedulers.0.max_epochs=2",
    ]
    trainer = Trainer(ppdet.load_config(DEMO_CONFIG, opts), output_dir=str(tmp_path))
    trainer.train()
    assert trainer.iteration == 2
    out = capsys.readouterr().out
    assert out.count("states no reference_batch_size") == 1
    assert out.count("schedule: total batch") == 1


def _training_configs() -> list[str]:
    found = glob.glob(os.path.join(ROOT, "configs", "*.yml"))
    found += glob.glob(os.path.join(ROOT, "configs", "*", "*.yml"))
    return sorted(
        os.path.relpath(p, ROOT)
        for p in found
        if os.sep + "_base_" + os.sep not in p and os.sep + "datasets" + os.sep not in p
    )


@pytest.mark.parametrize("rel", _training_configs())
def test_every_training_config_states_its_reference_batch(rel):
    """Published schedules: a multiple of the per-GPU batch (GPUs x batch_size); the demos:
    their own single-process batch, so ``make demo`` trains as written."""
    cfg = ppdet.load_config(os.path.join(ROOT, rel))
    assert cfg.get("LearningRate"), rel
    reference, batch = cfg.get("reference_batch_size"), cfg["TrainReader"]["batch_size"]
    assert isinstance(reference, int) and reference % batch == 0, (rel, reference, batch)
    if rel.endswith("_demo.yml"):
        assert reference == batch
        assert plan_schedule(cfg, batch).factor == 1.0
