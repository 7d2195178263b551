"""Trainer hooks and the Stitcher wired through them (``stitcher:`` config key), on the tiny
YOLOv3 whose training outputs (``model.loss``) get a fake ``reg_loss_by_scale``."""

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.config import ConfigError
from ppdet.engine import hooks as hooks_module
from ppdet.engine.checkpoint import latest_checkpoint
from ppdet.engine.hooks import StitcherHook, TrainHook
from ppdet.engine.stitcher import stitch_batch
from ppdet.engine.trainer import Trainer
from tests.conftest import DEMO_CONFIG, tiny_overrides

FEW_SMALL = {"small": 0.0, "medium": 1.0, "large": 1.0}  # small-object share 0


def make_trainer(data_dir, out_dir, *extra):
    opts = tiny_overrides(data_dir, str(out_dir)) + list(extra)
    return Trainer(ppdet.load_config(DEMO_CONFIG, opts), output_dir=str(out_dir))


def report_scales(trainer, parts=FEW_SMALL):
    """The model's training outputs (``model.loss``) gain ``reg_loss_by_scale`` (what a
    supporting head adds)."""
    loss = trainer.model.loss

    def with_scales(raw, batch):
        out = loss(raw, batch)
        out["reg_loss_by_scale"] = {k: paddle.to_tensor(v) for k, v in parts.items()}
        return out

    trainer.model.loss = with_scales


class Record(TrainHook):
    """Keeps the batches it is given."""

    def __init__(self):
        self.batches = []

    def before_batch(self, batch):
        self.batches.append(batch)
        return batch


def test_stitcher_feedback_stitches_the_next_batches(tiny_demo_data, tmp_path):
    trainer = make_trainer(tiny_demo_data, tmp_path, "stitcher={threshold: 0.5}")
    report_scales(trainer)
    loaded, seen = Record(), Record()
    (stitcher,) = trainer.hooks
    trainer.hooks = [loaded, stitcher, seen]
    trainer.train()  # 2 epochs x 2 steps
    assert isinstance(stitcher, StitcherHook) and stitcher.stitcher.num_stitched == 3
    assert seen.batches[0] is loaded.batches[0]  # no feedback before the first step
    for original, used in zip(loaded.batches[1:], seen.batches[1:], strict=True):
        expected = stitch_batch(original, grid=2)
        assert used["gt_bbox"].shape[1] == 4 * original["gt_bbox"].shape[1]
        np.testing.assert_allclose(used["image"].numpy(), expected["image"].numpy())
        np.testing.assert_allclose(used["gt_bbox"].numpy(), expected["gt_bbox"].numpy())


def test_stitcher_state_is_saved_and_restored_on_resume(tiny_demo_data, tmp_path):
    first = make_trainer(tiny_demo_data, tmp_path, "stitcher={threshold: 0.5}", "epoch=1")
    report_scales(first)
    first.train()
    state = paddle.load(latest_checkpoint(str(tmp_path)) + ".pdopt")["extra"]["hooks"]
    assert state["stitcher"] == {"stitch_next": True, "last_share": 0.0, "num_stitched": 1}

    resumed = make_trainer(tiny_demo_data, tmp_path, "stitcher={threshold: 0.5}")
    report_scales(resumed)
    loaded, seen = Record(), Record()
    (stitcher,) = resumed.hooks
    resumed.hooks = [loaded, stitcher, seen]
    resumed.train(resume="auto")
    assert stitcher.stitcher.num_stitched == 3  # 1 before + both steps after resume
    # the first batch after resuming is stitched, as the killed run's would have been
    assert seen.batches[0]["gt_bbox"].shape[1] == 4 * loaded.batches[0]["gt_bbox"].shape[1]


def test_every_process_decides_on_the_summed_losses(monkeypatch):
    hook = StitcherHook(threshold=0.5)
    hook.after_batch({"reg_loss_by_scale": FEW_SMALL})
    hook.after_step(1)
    assert hook.stitcher.stitch_next  # alone: share 0
    other_rank = np.array([3.0, 0.0, 0.0])  # small objects elsewhere
    monkeypatch.setattr(
        hooks_module.distributed, "all_reduce_sum", lambda v: list(np.add(v, other_rank))
    )
    hook.after_batch({"reg_loss_by_scale": FEW_SMALL})
    hook.after_step(2)
    assert not hook.stitcher.stitch_next and hook.stitcher.last_share == pytest.approx(0.6)


def test_a_model_without_scale_losses_is_a_clear_error(tiny_demo_data, tmp_path):
    trainer = make_trainer(tiny_demo_data, tmp_path, "stitcher={}")
    with pytest.raises(ConfigError, match="stitcher: the model's training outputs have no"):
        trainer.train()


@pytest.mark.parametrize(
    "value, message",
    [
        ("{threshold: 2}", "threshold must be in"),
        ("{grid: 1}", "grid must be >= 2"),
        ("{size: 3}", "stitcher.size: unknown key"),
    ],
)
def test_stitcher_section_is_checked_at_load(value, message, tiny_demo_data, tmp_path):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path)) + [f"stitcher={value}"]
    with pytest.raises(ConfigError, match=message):
        ppdet.load_config(DEMO_CONFIG, opts)


def test_no_stitcher_key_no_hooks(tiny_demo_data, tmp_path):
    assert make_trainer(tiny_demo_data, tmp_path).hooks == []
    assert make_trainer(tiny_demo_data, tmp_path, "stitcher=null").hooks == []
