"""Multi-process training and evaluation through Paddle's own launcher, 2 CPU processes.

Every launch goes through ``tests/tools/launcher.py``, which kills whatever a launch started
when its test ends, passed or failed. The tiny YOLOv3 uses affine-channel norms here: batch
statistics would differ between one batch of 4 and two of 2, everything else must not.
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

import ppdet
from ppdet.engine.trainer import Trainer
from tests.conftest import DEMO_CONFIG, tiny_overrides
from tests.tools.launcher import launched, run_launch, train_script, worker_script

# 8 images, a total batch of 4: 2 steps per epoch; checkpoints after steps 7 (mid-epoch) and 14
SYNC = [
    "MobileNet.norm_type=affine_channel",
    "YOLOv3FPN.norm_type=affine_channel",
    "TrainReader.batch_transforms.BatchRandomResize.target_size=[64]",  # one size for any split
    "epoch=null",
    "max_iters=14",
    "snapshot_iter=7",
    # Adam moves every weight by ~LR per step whatever its gradient's size, so float-noise
    # gradients (2 x 2 images summed vs 4) show up as LR-sized differences: keep LR small
    "LearningRate.base_lr=0.005",
    "LearningRate.schedulers.0.max_epochs=14",
]
TIMEOUT = 600  # s per launch: generous for a busy machine


def options(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return tiny_overrides(data_dir, out_dir) + SYNC + list(extra)


def history(path) -> dict[int, dict]:
    rows = [json.loads(line) for line in open(path)]
    return {r["iter"]: r for r in rows if "eval" not in r}


def wait_for_rank0(launch, text: str) -> None:
    """Until rank 0's log shows ``text`` (the launch must still run, within TIMEOUT)."""
    deadline = time.time() + TIMEOUT
    while text not in launch.log(0):
        assert launch.proc.poll() is None and time.time() < deadline, launch.output()[-4000:]
        time.sleep(0.05)


def assert_continues_exactly(straight_dir, run_dir, after: int) -> None:
    """The resumed run's history has every step, and the steps after ``after`` equal those
    of the uninterrupted run."""
    straight, again = history(straight_dir / "history.jsonl"), history(run_dir / "history.jsonl")
    assert sorted(again) == list(range(1, 15))  # rows after the stop of the first run replaced
    for it in range(after + 1, 15):
        for key, value in straight[it].items():
            assert again[it][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (it, key)


@pytest.fixture(scope="module")
def two_process_run(tiny_demo_data, tmp_path_factory):
    """14 steps on 2 processes x 2 images; each rank's final parameters in params_rank<r>.npz."""
    out = tmp_path_factory.mktemp("two_process")
    run_dir = out / "run"
    run_dir.mkdir()
    args = ["-c", DEMO_CONFIG, "-o", *options(tiny_demo_data, str(out), "TrainReader.batch_size=2")]
    launch = run_launch(
        worker_script(), [*args, "--output_dir", str(run_dir)], str(out / "log"), TIMEOUT
    )
    assert launch.proc.returncode == 0, launch.output()[-4000:]
    return run_dir


def test_launch_two_processes_shards_data_and_rank0_saves(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out")) + ["MobileNet.norm_type=sync_bn"]
    launch = run_launch(train_script(), ["-c", DEMO_CONFIG, "-o", *opts], str(tmp_path / "log"))
    rank0 = launch.log(0)
    assert launch.proc.returncode == 0, launch.output()[-4000:]
    # 8 images, batch 4 per process, 2 processes: one step per epoch, two epochs
    assert "iter [2/2]" in rank0 and "iter [3/" not in rank0
    assert "total batch 8 (2 process(es) x 4 image(s))" in rank0
    assert "sync_bn: Paddle has no CPU sync_batch_norm kernel" in rank0  # said, not silent
    run_dir = tmp_path / "out" / "yolov3_mobilenet_v1_demo"
    assert (run_dir / "model_final.pdparams").is_file() and (run_dir / "epoch_2.pdopt").is_file()
    assert "saved checkpoint" not in launch.log(1)  # only rank 0 writes


def test_ranks_stay_identical_and_equal_one_process(two_process_run, tiny_demo_data, tmp_path):
    ranks = [np.load(two_process_run / f"params_rank{r}.npz") for r in (0, 1)]
    assert set(ranks[0].files) == set(ranks[1].files)
    for name in ranks[0].files:  # the same all-reduced gradients: bit for bit the same
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)

    opts = options(tiny_demo_data, str(tmp_path), "TrainReader.batch_size=4")
    single = Trainer(ppdet.load_config(DEMO_CONFIG, opts), output_dir=str(tmp_path / "run"))
    single.train()
    for name, value in single.model.state_dict().items():
        np.testing.assert_allclose(
            ranks[0][name], value.numpy(), rtol=1e-3, atol=1e-4, err_msg=name
        )
    one, two = (
        history(tmp_path / "run" / "history.jsonl"),
        history(two_process_run / "history.jsonl"),
    )
    assert sorted(one) == sorted(two) == list(range(1, 15))  # log_iter 1: every step
    for it in one:  # the logged loss of 2 processes is their mean: the total batch's
        assert two[it]["loss"] == pytest.approx(one[it]["loss"], rel=1e-3), it


@pytest.mark.parametrize("victim", [0, 1])  # 0 writes the checkpoints, 1 does not
def test_sigkill_mid_epoch_and_resume_auto_continue_exactly(
    victim, two_process_run, tiny_demo_data, tmp_path
):
    opts = options(tiny_demo_data, str(tmp_path), "TrainReader.batch_size=2")
    args = ["-c", DEMO_CONFIG, "-o", *opts, "--output_dir", str(tmp_path / "run")]
    with launched(train_script(), args, str(tmp_path / "log1")) as launch:
        wait_for_rank0(launch, "iter [8/14]")  # step 8 done: iter_7 saved, iter_14 not
        pid = launch.worker_pids()[victim]
        os.kill(pid, signal.SIGKILL)
        code = launch.wait(TIMEOUT)
        killed_output = launch.output()
    assert code != 0
    named_by_launcher = f"Container rank {victim} status failed" in killed_output
    named_by_peer = f"because rank {victim} (pid {pid}) ended without an error" in killed_output
    assert named_by_launcher or named_by_peer, killed_output[-4000:]

    resumed = run_launch(train_script(), [*args, "--resume", "auto"], str(tmp_path / "log2"))
    assert resumed.proc.returncode == 0, resumed.output()[-4000:]
    assert f"resumed from {tmp_path / 'run' / 'iter_7'} at iteration 7" in resumed.log(0)
    assert_continues_exactly(two_process_run, tmp_path / "run", after=7)


def test_sigterm_to_one_rank_stops_both_after_one_step_with_a_checkpoint(
    two_process_run, tiny_demo_data, tmp_path
):
    opts = options(tiny_demo_data, str(tmp_path), "TrainReader.batch_size=2")
    args = ["-c", DEMO_CONFIG, "-o", *opts, "--output_dir", str(tmp_path / "run")]
    with launched(train_script(), args, str(tmp_path / "log1")) as launch:
        wait_for_rank0(launch, "iter [3/14]")
        os.kill(launch.worker_pids()[1], signal.SIGTERM)  # rank 1: not the one that writes
        launch.wait(TIMEOUT)
        stopped = [
            [ln for ln in launch.log(r).splitlines() if "training stopped on request" in ln]
            for r in (0, 1)
        ]
    assert stopped[0] and stopped[1], launch.output()[-4000:]
    iteration = int(stopped[0][0].split("after iteration ")[1].split("/")[0])
    assert f"after iteration {iteration}/14" in stopped[1][0]  # the same step on both
    assert 3 <= iteration < 14
    assert (tmp_path / "run" / f"iter_{iteration}.pdopt").is_file()

    resumed = run_launch(train_script(), [*args, "--resume", "auto"], str(tmp_path / "log2"))
    assert resumed.proc.returncode == 0, resumed.output()[-4000:]
    assert f"at iteration {iteration}" in resumed.log(0)
    assert_continues_exactly(two_process_run, tmp_path / "run", after=iteration)


@pytest.mark.parametrize("metric, batch_size", [("COCO", 1), ("VOC", 3)])
def test_distributed_eval_equals_single_process(
    metric, batch_size, two_process_run, tiny_demo_data, tmp_path
):
    weights = str(two_process_run / "model_final")
    extra = [f"weights={weights}", f"EvalReader.batch_size={batch_size}"]
    if metric == "VOC":
        voc = os.path.join(tiny_demo_data, "voc")
        extra += [
            "metric=VOC",
            f"EvalDataset={{name: VOCDataSet, dataset_dir: {voc}, "
            "anno_path: ImageSets/Main/val.txt, label_list: label_list.txt}",
        ]
    opts = options(tiny_demo_data, str(tmp_path), *extra)
    out = tmp_path / "two"
    out.mkdir()
    launch = run_launch(
        worker_script(),
        ["-c", DEMO_CONFIG, "-o", *opts, "--output_dir", str(out), "--evaluate"],
        str(tmp_path / "log"),
        TIMEOUT,
    )
    assert launch.proc.returncode == 0, launch.output()[-4000:]
    shared = [json.loads((out / f"metrics_rank{r}.json").read_text()) for r in (0, 1)]

    single = Trainer(ppdet.load_config(DEMO_CONFIG, opts), output_dir=str(tmp_path / "one"))
    single.load_weights(weights)
    expected = single.evaluate()
    assert shared[0] == shared[1] == expected  # exactly, every key
    assert expected[expected["primary_metric"]] > 0  # not a vacuous comparison
    if metric == "COCO":  # the gathered detections: those of one process, in its order
        one = json.loads((tmp_path / "one" / "bbox.json").read_text())
        two = json.loads((out / "bbox.json").read_text())
        assert [d["image_id"] for d in two] == [d["image_id"] for d in one]
        np.testing.assert_allclose([d["bbox"] for d in two], [d["bbox"] for d in one], atol=1e-4)


def test_a_failing_rank_ends_the_launch_naming_it(tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path)) + ["TrainReader.batch_size=2"]
    args = ["-c", DEMO_CONFIG, "-o", *opts, "--output_dir", str(tmp_path)]
    launch = run_launch(
        worker_script(), [*args, "--fail_rank", "1", "--fail_at", "2"], str(tmp_path / "log")
    )
    assert launch.proc.returncode not in (0, None)
    output = launch.output()
    assert "rank 1 of 2: RuntimeError: injected failure at iteration 2" in output
    assert "Container rank 1 status failed" in output or "because rank 1 failed first" in output
    assert "iter [3/" not in launch.log(0)  # rank 0 went no further
