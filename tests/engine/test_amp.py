"""--amp: what is chosen where, and the CPU saying it is unsupported."""

import logging

import paddle
import pytest

import ppdet
from ppdet.config import ConfigError
from ppdet.engine import amp as amp_module
from ppdet.engine.amp import MixedPrecision, to_float32
from ppdet.engine.trainer import Trainer
from tests.conftest import DEMO_CONFIG, tiny_overrides


def test_cpu_says_unsupported_and_trains_in_float32(tiny_demo_data, tmp_path, caplog):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path)) + ["epoch=1"]
    with caplog.at_level(logging.WARNING, logger="ppdet"):
        trainer = Trainer(ppdet.load_config(DEMO_CONFIG, opts), output_dir=str(tmp_path), amp=True)
    assert not trainer.amp.enabled and trainer.amp.scaler is None
    assert any("not supported on the CPU" in m for m in caplog.messages)
    trainer.train()
    assert all(v.dtype == paddle.float32 for v in trainer.model.state_dict().values())


def test_the_device_decides_the_low_precision(monkeypatch):
    monkeypatch.setattr(amp_module, "_on_gpu", lambda: True)
    monkeypatch.setattr(paddle.amp, "is_bfloat16_supported", lambda *a: False)
    fp16 = MixedPrecision(True)
    assert fp16.dtype == "float16" and fp16.scaler is not None  # dynamic loss scaling
    assert "dynamic loss scaling" in fp16.message
    with pytest.raises(ConfigError, match="does not support bfloat16"):
        MixedPrecision("bf16")
    monkeypatch.setattr(paddle.amp, "is_bfloat16_supported", lambda *a: True)
    bf16 = MixedPrecision("auto")
    assert bf16.dtype == "bfloat16" and bf16.scaler is None
    assert MixedPrecision("fp16").dtype == "float16"
    assert not MixedPrecision(False).enabled
    with pytest.raises(ConfigError, match="expected one of auto, fp16, bf16"):
        MixedPrecision("fp8")


def test_norms_stay_in_float32_under_autocast():
    assert {"batch_norm", "sync_batch_norm", "group_norm", "layer_norm"} <= amp_module.FP32_OPS


def test_outputs_are_cast_to_float32():
    half = paddle.ones([2], "float16")
    out = to_float32(
        {"loss": half, "parts": [half, {"x": half}], "n": 3, "i": paddle.ones([1], "int64")}
    )
    assert out["loss"].dtype == paddle.float32
    assert out["parts"][0].dtype == paddle.float32 and out["parts"][1]["x"].dtype == paddle.float32
    assert out["n"] == 3 and out["i"].dtype == paddle.int64


def test_paddle_cpu_really_has_no_bfloat16_convolution():
    """Why --amp refuses the CPU: if this starts to pass, Paddle gained the kernels and
    engine/amp.py should use them."""
    if paddle.is_compiled_with_cuda():
        pytest.skip("a CUDA build")
    x = paddle.ones([1, 2, 4, 4]).astype("bfloat16")
    w = paddle.ones([2, 2, 3, 3]).astype("bfloat16")
    with pytest.raises(RuntimeError, match="not registered"):
        paddle.nn.functional.conv2d(x, w)
