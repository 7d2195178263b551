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
