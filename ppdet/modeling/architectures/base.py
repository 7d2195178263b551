"""What every architecture is: a network, a loss and a post-process (DETR's split).

- ``forward(batch) -> raw``: the network. ``batch`` holds ``image`` [B, 3, H, W] and
  ``im_shape`` [B, 2] (plus the ground truth in training, which the two-stage detectors read
  to sample their RoIs); ``raw`` is a dict of tensors (or lists of tensors): the heads' raw
  outputs, and in training whatever sampled targets the loss needs.
- ``loss(raw, batch) -> {"loss": scalar, "loss_xxx": scalar, ...}``: training only; ``loss``
  is the sum of the named parts.
- ``postprocess(raw, image_meta) -> {"bbox": [N, 6] float32 (class, score, x1, y1, x2, y2 in
  original-image pixels), "bbox_num": [B] int32}`` plus ``"mask"`` [N, H_max, W_max] uint8 for
  mask models (image b's rows valid in its own original size, see
  ``ppdet.modeling.postprocess.mask``); ``image_meta`` holds ``im_shape`` and
  ``scale_factor`` [B, 2]. Eval mode only. Paddle tensor ops throughout, so it can be traced
  into an exported graph together with the forward.

Validation, tools/eval.py, tools/infer.py and the Predictor all go through ``predict``; the
exporter traces ``postprocess(forward(...))``.
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

__all__ = ["Detector", "with_total"]


def with_total(losses: dict[str, paddle.Tensor]) -> dict[str, paddle.Tensor]:
    """{"loss": the sum of ``losses`` (each reshaped to a scalar), **losses}."""
    total = paddle.add_n([v.reshape([]) for v in losses.values()])
    return {"loss": total, **losses}


class Detector(nn.Layer):
    """Base of every architecture (module docstring): subclasses implement ``forward``,
    ``loss`` and ``postprocess``; ``losses(batch)`` and ``predict(batch)`` chain them for
    eager code."""

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def loss(self, raw: dict[str, Any], batch: dict[str, Any]) -> dict[str, paddle.Tensor]:
        raise NotImplementedError

    def postprocess(
        self, raw: dict[str, Any], image_meta: dict[str, paddle.Tensor]
    ) -> dict[str, paddle.Tensor]:
        raise NotImplementedError

    def losses(self, batch: dict[str, Any]) -> dict[str, paddle.Tensor]:
        """Training mode: ``loss(self(batch), batch)``."""
        return self.loss(self(batch), batch)

    @paddle.no_grad()
    def predict(self, batch: dict[str, Any]) -> dict[str, paddle.Tensor]:
        """Eval mode, no gradients: ``postprocess(self(batch), batch)``, the eval contract."""
        if self.training:
            raise RuntimeError(
                f"{type(self).__name__}.predict needs eval mode: call model.eval() first"
            )
        return self.postprocess(self(batch), batch)
