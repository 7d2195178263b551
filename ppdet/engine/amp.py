"""Mixed-precision training (``tools/train.py --amp``).

On a GPU: bfloat16 where the device supports it (no loss scaling needed), else float16 with
dynamic loss scaling (``paddle.amp.GradScaler``: the scale halves after a step with inf/nan
gradients, which is then skipped, and doubles after 1000 good ones). Autocast level O1:
convolutions and matrix products run in the low precision; norm layers are kept in float32
(``FP32_OPS``, beside Paddle's own float32 list), and the model's outputs are cast to float32
(``to_float32``) before anything is summed into a loss. Parameters and optimizer state stay
float32.

On the CPU mixed precision is not supported by Paddle 3.1.1: ``amp_guard`` does nothing on
CPUPlace, and conv2d and matmul have no bfloat16 (or float16) CPU kernels ("kernel ... is not
registered"), even on CPUs with AVX512-BF16 and with oneDNN enabled; measured with Paddle
3.1.1 on an AMD EPYC with avx512_bf16. ``--amp`` there says so and trains in float32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import paddle

from ppdet.config.errors import ConfigError

__all__ = ["FP32_OPS", "MixedPrecision", "to_float32"]

logger = logging.getLogger(__name__)

# kept in float32 under autocast (Paddle's O1 lists already keep losses and softmax there)
FP32_OPS = {"batch_norm", "sync_batch_norm", "group_norm", "layer_norm", "instance_norm"}
CHOICES = ("auto", "fp16", "bf16")
CPU_UNSUPPORTED = (
    "--amp: mixed precision is not supported on the CPU with Paddle 3.1.1 (autocast does "
    "nothing on CPUPlace and conv2d/matmul have no bfloat16 CPU kernels); training in float32"
)


def to_float32(value: Any) -> Any:
    """``value`` (a tensor, or dicts/lists/tuples of them) with floating tensors as float32."""
    if isinstance(value, paddle.Tensor):
        if value.dtype in (paddle.float16, paddle.bfloat16):
            return value.astype("float32")
        return value
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(v) for v in value)
    return value


def _on_gpu() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.get_device().startswith("gpu")


class MixedPrecision:
    """The precision of a training run and the calls that depend on it.

    Args:
        requested: False/None (float32), True or "auto" (bf16 where supported, else fp16),
            "fp16" or "bf16".

    Attributes: ``dtype`` ("float16", "bfloat16" or None for float32), ``scaler`` (a
    GradScaler for float16, else None), ``message`` (what was chosen, for the log).
    """

    def __init__(self, requested: bool | str | None) -> None:
        self.dtype: str | None = None
        self.scaler: paddle.amp.GradScaler | None = None
        self.message = ""
        if requested in (None, False, "", "none", "off"):
            return
        choice = "auto" if requested is True else str(requested).lower()
        if choice not in CHOICES:
            raise ConfigError(f"--amp: expected one of {', '.join(CHOICES)}, got {requested!r}")
        if not _on_gpu():
            self.message = CPU_UNSUPPORTED
            return
        bf16_ok = paddle.amp.is_bfloat16_supported()
        if choice == "bf16" and not bf16_ok:
            raise ConfigError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")
        if choice == "bf16" or (choice == "auto" and bf16_ok):
            self.dtype = "bfloat16"
            self.message = "--amp: bfloat16 autocast (norms and losses in float32)"
        else:
            self.dtype = "float16"
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0**15)
            self.message = (
                "--amp: float16 autocast with dynamic loss scaling (norms and losses in float32)"
            )

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass's precision (nothing changes in float32)."""
        if self.dtype is None:
            yield
            return
        with paddle.amp.auto_cast(
            enable=True, custom_black_list=FP32_OPS, level="O1", dtype=self.dtype
        ):
            yield

    def backward(self, loss: paddle.Tensor) -> None:
        """Backward pass of ``loss`` (scaled for float16)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer: paddle.optimizer.Optimizer) -> None:
        """Optimizer step on the accumulated gradients (unscaled, skipped on inf/nan and the
        scale adapted, for float16)."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        """The loss scaler's state (numbers and numpy arrays; empty without a scaler)."""
        return {} if self.scaler is None else dict(self.scaler.state_dict())

    def set_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
