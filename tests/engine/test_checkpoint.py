"""Checkpoint files: atomic writes, completeness, finding the latest one."""

import os

import numpy as np
import paddle
import pytest

from ppdet.atomic_io import atomic_path
from ppdet.engine import checkpoint
from ppdet.zoo.weights import WeightsError


def test_failed_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "model.pdparams"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.pdparams"]  # no temp file left behind


def test_latest_complete_checkpoint(tmp_path):
    model = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.Momentum(0.1, parameters=model.parameters())
    for name, it in (("epoch_1", 10), ("epoch_2", 20)):
        checkpoint.save_checkpoint(
            str(tmp_path / name), model, opt, epoch=int(name[-1]), iteration=it, config_text=""
        )
    checkpoint.save_weights(model, str(tmp_path / "epoch_3"))  # weights only: incomplete
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_2")
    assert checkpoint.resolve_resume(str(tmp_path / "epoch_1.pdparams")) == str(
        tmp_path / "epoch_1"
    )
    with pytest.raises(WeightsError, match="epoch_3.pdopt is missing"):
        checkpoint.resolve_resume(str(tmp_path / "epoch_3"))
    with pytest.raises(WeightsError, match="no complete checkpoint"):
        checkpoint.resolve_resume(str(_empty(tmp_path)))


def _empty(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    return path


def test_optimizer_state_survives_new_parameter_names(tmp_path):
    """Paddle names parameters by a process-wide counter; the checkpoint must not depend on it."""

    def build():
        model = paddle.nn.Sequential(paddle.nn.Linear(2, 3), paddle.nn.Linear(3, 1))
        return model, paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters())

    model, opt = build()
    model(paddle.ones([4, 2])).sum().backward()
    opt.step()
    checkpoint.save_checkpoint(
        str(tmp_path / "c"), model, opt, epoch=1, iteration=1, config_text=""
    )
    velocity = {k: v.numpy() for k, v in opt.state_dict().items() if "velocity" in k}

    _ = paddle.nn.Linear(5, 5)  # shifts the global name counter
    model2, opt2 = build()
    checkpoint.load_checkpoint(str(tmp_path / "c"), model2, opt2)
    # until the next step Paddle holds loaded accumulators as given (arrays), then copies them in
    restored = {
        k: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        for k, v in opt2.state_dict().items()
        if "velocity" in k
    }
    assert sorted(v.tolist() for v in map(lambda a: a.ravel(), velocity.values())) == sorted(
        v.tolist() for v in map(lambda a: a.ravel(), restored.values())
    )


def test_resume_refuses_a_training_state_that_runs_code(tmp_path):
    import pickle

    model = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.Momentum(0.1, parameters=model.parameters())
    checkpoint.save_checkpoint(
        str(tmp_path / "c"), model, opt, epoch=1, iteration=1, config_text=""
    )
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "c.pdopt").write_bytes(pickle.dumps({"version": 1, "optimizer": Evil()}))
    with pytest.raises(WeightsError, match=r"c.pdopt: refused to load"):
        checkpoint.load_checkpoint(str(tmp_path / "c"), model, opt)
    assert not marker.exists()


def _model_and_optimizer():
    model = paddle.nn.Linear(2, 2)
    return model, paddle.optimizer.Momentum(0.1, parameters=model.parameters())


def test_a_checkpoint_killed_while_being_rewritten_is_never_picked(tmp_path, monkeypatch):
    model, opt = _model_and_optimizer()
    for name in ("iter_10", "iter_20"):
        checkpoint.save_checkpoint(
            str(tmp_path / name), model, opt, epoch=0, iteration=int(name[5:]), config_text=""
        )
    os.utime(tmp_path / "iter_10.pdopt", (1000, 1000))  # the older one
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_20")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # dies while the new weights are being written

    monkeypatch.setattr(paddle, "save", killed)
    with pytest.raises(KeyboardInterrupt):  # a new run writes iter_20 again
        checkpoint.save_checkpoint(
            str(tmp_path / "iter_20"), model, opt, epoch=0, iteration=20, config_text=""
        )
    # the old iter_20.pdopt went first: the half-renewed iter_20 is not complete any more
    assert not (tmp_path / "iter_20.pdopt").exists()
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(tmp_path / "iter_10")


def test_latest_is_the_last_written_whatever_its_name(tmp_path):
    model, opt = _model_and_optimizer()
    for name, stamp in (("iter_500", 2000), ("epoch_3", 3000), ("iter_900", 1000)):
        checkpoint.save_checkpoint(
            str(tmp_path / name), model, opt, epoch=0, iteration=1, config_text=""
        )
        os.utime(tmp_path / f"{name}.pdopt", (stamp, stamp))
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(tmp_path / "epoch_3")


def test_temp_files_of_a_killed_write_are_removed(tmp_path):
    for name in (
        ".iter_5.pdparams.x1y2.tmp",
        ".iter_5.pdopt.abc.tmp",
        "keep.txt",
        "iter_1.pdparams",
    ):
        (tmp_path / name).write_bytes(b"x")
    removed = checkpoint.remove_partial_writes(str(tmp_path))
    assert len(removed) == 2
    assert sorted(os.listdir(tmp_path)) == ["iter_1.pdparams", "keep.txt"]
