"""Exponential moving average (EMA) of a model's weights, the weights eval and infer use.

After every optimizer step: ``ema = d * ema + (1 - d) * weights`` for every float entry of
the state dict (parameters and norm statistics), with ``d = min(decay, (1 + t) / (10 + t))``
at step ``t`` so that the average is not dominated by the random initial weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import paddle


class ModelEMA:
    def __init__(self, model: paddle.nn.Layer, decay: float = 0.9998) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.step = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: paddle.nn.Layer) -> None:
        """Fold the model's current weights into the average (call after optimizer.step())."""
        self.step += 1
        d = min(self.decay, (1 + self.step) / (10 + self.step))
        with paddle.no_grad():
            for name, value in model.state_dict().items():
                if value.dtype in (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16):
                    self.state[name] = d * self.state[name] + (1 - d) * value.detach()
                else:
                    self.state[name] = value.detach().clone()

    @contextlib.contextmanager
    def applied(self, model: paddle.nn.Layer) -> Iterator[None]:
        """Run the block with the averaged weights in ``model``; restore its own afterwards."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.set_state_dict(self.state)
        try:
            yield
        finally:
            model.set_state_dict(backup)

    def state_dict(self) -> dict:
        return {"step": self.step, "decay": self.decay}

    def set_state(self, weights: dict, meta: dict) -> None:
        """Restore from saved averaged ``weights`` (name -> array) and ``state_dict()``."""
        self.step = int(meta["step"])
        for name in self.state:
            self.state[name] = paddle.to_tensor(weights[name], dtype=self.state[name].dtype)
