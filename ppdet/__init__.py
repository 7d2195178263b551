"""ppdet: object detection on PaddlePaddle.

Public entry points: ``load_config``, ``build_model``, ``Trainer``; ``PpdetError`` is the base
of every user-facing error (bad config, data, weights, download).
"""

from __future__ import annotations

from ppdet.errors import PpdetError

__version__ = "0.1.0"


def register_all() -> None:
    """Import the packages whose classes register themselves (models, data, evaluators) and
    whose config sections have load-time checks (the optimizer and LR schedule, hooks)."""
    import ppdet.data  # noqa: F401
    import ppdet.engine.hooks  # noqa: F401  (the stitcher section's check)
    import ppdet.engine.optim  # noqa: F401
    import ppdet.evaluation  # noqa: F401
    import ppdet.modeling  # noqa: F401


def load_config(path: str, overrides=()):
    """Read a YAML config (with ``_BASE_`` files), apply ``key=value`` overrides, validate it."""
    from ppdet.config import load_config as _load
    from ppdet.config import validate_config

    register_all()
    cfg = _load(path, overrides)
    validate_config(cfg)
    return cfg


def build_model(cfg):
    """The ``paddle.nn.Layer`` named by ``cfg["architecture"]``, built from its sections."""
    from ppdet.config import create

    register_all()
    arch = cfg["architecture"]
    return create(arch, cfg.get(arch) or {}, role="architecture", cfg=cfg)


__all__ = ["PpdetError", "build_model", "load_config", "register_all"]


def __getattr__(name: str):
    if name == "Trainer":
        from ppdet.engine.trainer import Trainer

        return Trainer
    raise AttributeError(name)
