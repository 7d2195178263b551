"""Deployment: ``export_model`` writes a Paddle inference model plus ``infer_cfg.yml``;
``Predictor`` runs it (Paddle Inference or ONNX Runtime) with the same preprocessing and result
unpacking as tools/infer.py (``pipeline.py``)."""

from __future__ import annotations

__all__ = ["Predictor", "export_model"]


def __getattr__(name: str):
    if name == "export_model":
        from .exporter import export_model

        return export_model
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    raise AttributeError(name)
