"""The Trainer on a tiny YOLOv3: checkpoints, exact resume, NaN stop, evaluation."""

import json
import os

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.config import ConfigError
from ppdet.engine.trainer import Trainer, TrainingDiverged
from tests.conftest import DEMO_CONFIG, tiny_overrides


def make_trainer(data_dir, out_dir, *extra):
    cfg = ppdet.load_config(DEMO_CONFIG, tiny_overrides(data_dir, out_dir) + list(extra))
    return Trainer(cfg, output_dir=str(out_dir))


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def history_losses(folder):
    rows = [json.loads(line) for line in open(os.path.join(folder, "history.jsonl"))]
    return {r["iter"]: r["loss"] for r in rows if "eval" not in r}


def test_resume_continues_exactly(tiny_demo_data, tmp_path):
    straight = make_trainer(tiny_demo_data, tmp_path / "straight")
    straight.train()
    assert {"epoch_1.pdparams", "epoch_1.pdopt", "epoch_2.pdparams", "model_final.pdparams"} <= set(
        os.listdir(tmp_path / "straight")
    )

    first = make_trainer(tiny_demo_data, tmp_path / "resumed", "epoch=1")
    first.train()
    resumed = make_trainer(tiny_demo_data, tmp_path / "resumed")
    resumed.train(resume=str(tmp_path / "resumed"))  # the folder: latest complete checkpoint

    a, b = weights(straight.model), weights(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_resume_mid_epoch_repeats_data_order_and_augmentation(tiny_demo_data, tmp_path):
    """Random flips and a random batch size per batch; a checkpoint after step 3 of 2-step
    epochs; the resumed run's losses are the uninterrupted run's."""
    mid_epoch = ["epoch=null", "max_iters=6", "snapshot_iter=3", "TrainReader.batch_size=4"]
    mid_epoch += ["LearningRate.schedulers.0.max_epochs=6"]
    straight = make_trainer(tiny_demo_data, tmp_path / "straight", *mid_epoch)
    straight.train()
    interrupted = make_trainer(tiny_demo_data, tmp_path / "run", *mid_epoch)
    interrupted.train()
    for name in ("iter_6.pdopt", "iter_6.pdparams", "model_final.pdparams"):
        os.remove(tmp_path / "run" / name)  # as if killed during step 4 .. 6
    resumed = make_trainer(tiny_demo_data, tmp_path / "run", *mid_epoch)
    resumed.train(resume="auto")
    expected, got = history_losses(tmp_path / "straight"), history_losses(tmp_path / "run")
    assert sorted(got) == list(range(1, 7))
    for it in range(4, 7):
        assert got[it] == pytest.approx(expected[it], rel=1e-6), it
    assert len({round(v, 3) for v in expected.values()}) == 6  # the steps differ


def test_resume_auto_without_checkpoint_starts_a_new_run(tiny_demo_data, tmp_path, capsys):
    trainer = make_trainer(tiny_demo_data, tmp_path, "epoch=1")
    trainer.train(resume="auto")
    assert trainer.iteration == 2
    assert "--resume auto: no complete checkpoint in" in capsys.readouterr().out


def test_accumulated_micro_batches_equal_the_larger_batch(tiny_demo_data, tmp_path):
    """2 micro-batches of 2 images = one batch of 4 (norms without batch statistics, one
    input size)."""
    same = [
        "MobileNet.norm_type=affine_channel",
        "YOLOv3FPN.norm_type=affine_channel",
        "TrainReader.batch_transforms.BatchRandomResize.target_size=[64]",
    ]
    big = make_trainer(tiny_demo_data, tmp_path / "big", *same, "TrainReader.batch_size=4")
    big.train()
    small = make_trainer(
        tiny_demo_data, tmp_path / "acc", *same, "TrainReader.batch_size=2", "accumulate_steps=2"
    )
    small.train()
    assert big.iteration == small.iteration == 4
    a, b = weights(big.model), weights(small.model)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-4, err_msg=name)
    one, two = history_losses(tmp_path / "big"), history_losses(tmp_path / "acc")
    for it in one:
        assert two[it] == pytest.approx(one[it], rel=1e-4)


def test_accumulate_steps_must_be_positive(tiny_demo_data, tmp_path):
    with pytest.raises(ConfigError, match="accumulate_steps"):
        make_trainer(tiny_demo_data, tmp_path, "accumulate_steps=0").train()


def test_nan_loss_stops_with_iteration_and_keeps_last_checkpoint(tiny_demo_data, tmp_path):
    trainer = make_trainer(tiny_demo_data, tmp_path)
    loss = trainer.model.loss
    calls = {"n": 0}

    def poisoned(raw, batch):
        out = loss(raw, batch)
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2 (2 steps per epoch), after epoch_1 was saved
            out["loss_obj"] = out["loss_obj"] * float("nan")
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer.model.loss = poisoned
    with pytest.raises(TrainingDiverged, match=r"iteration 3 .*loss_obj=nan.*epoch_1"):
        trainer.train()
    saved = paddle.load(str(tmp_path / "epoch_1.pdparams"))
    assert all(np.isfinite(np.asarray(v)).all() for v in saved.values())
    assert not os.path.exists(tmp_path / "epoch_2.pdparams")


def test_evaluate_returns_coco_metrics(tiny_demo_data, tmp_path):
    trainer = make_trainer(tiny_demo_data, tmp_path)
    metrics = trainer.evaluate()
    assert metrics["primary_metric"] == "AP"
    assert {"AP", "AP50", "AR100"} <= set(metrics)
    assert all(-1.0 <= metrics[k] <= 1.0 for k in ("AP", "AP50", "AR100"))
    record = json.loads((tmp_path / "eval_metrics.json").read_text())  # for publishing
    assert record["metrics"]["AP50"] == pytest.approx(metrics["AP50"])
    assert record["dataset"].endswith("instances_val.json") and record["iteration"] is None


def test_train_with_validation_keeps_best_model(tiny_demo_data, tmp_path):
    trainer = make_trainer(tiny_demo_data, tmp_path, "epoch=1")
    metrics = trainer.train(validate=True)
    assert "AP" in metrics
    assert os.path.isfile(tmp_path / "best_model.pdparams")


def test_iteration_based_schedule_saves_by_iteration(tiny_demo_data, tmp_path):
    trainer = make_trainer(
        tiny_demo_data,
        tmp_path,
        "epoch=null",
        "max_iters=3",
        "snapshot_iter=2",
        "LearningRate.schedulers.0.max_epochs=3",
    )
    trainer.train()
    files = set(os.listdir(tmp_path))
    assert {"iter_2.pdopt", "iter_3.pdopt", "model_final.pdparams"} <= files
    state = paddle.load(str(tmp_path / "iter_3.pdopt"))
    assert state["iteration"] == 3


def test_voc_dataset_and_metric(tiny_demo_data, tmp_path):
    voc = os.path.join(tiny_demo_data, "voc")
    dataset = "{name: VOCDataSet, dataset_dir: %s, anno_path: ImageSets/Main/%s.txt, label_list: label_list.txt}"
    trainer = make_trainer(
        tiny_demo_data,
        tmp_path,
        "metric=VOC",
        "epoch=1",
        f"TrainDataset={dataset % (voc, 'train')}",
        f"EvalDataset={dataset % (voc, 'val')}",
    )
    metrics = trainer.train(validate=True)
    assert metrics["primary_metric"] == "mAP"
    assert 0.0 <= metrics["mAP_11point"] <= 1.0 and 0.0 <= metrics["mAP_area"] <= 1.0


def test_use_vdl_without_visualdl_says_so(capsys, monkeypatch, tmp_path):
    import builtins

    from ppdet.engine.logger import TrainLogger

    real_import = builtins.__import__

    def no_visualdl(name, *args, **kwargs):
        if name == "visualdl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_visualdl)
    logger = TrainLogger(10, 5, vdl_dir=str(tmp_path))
    assert logger.vdl is None
    assert "VisualDL is not installed" in capsys.readouterr().out
