"""Which COCO evaluation library runs ``COCOeval``: pycocotools (the reference) or
faster-coco-eval (a C++ re-implementation giving the same stats, several times faster), picked
automatically when it is installed (``pip install faster-coco-eval``).

``PPDET_COCO_EVAL=pycocotools`` (or ``faster_coco_eval``) forces one; an evaluator's ``backend``
argument does the same per evaluator.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

__all__ = ["BACKENDS", "CocoBackend", "coco_backend"]

BACKENDS = ("pycocotools", "faster_coco_eval")


class CocoBackend:
    """``COCO`` (ground truth / results) and ``evaluator(gt, dt, iou_type)`` of one library."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            self.COCO = COCO
            self._eval = COCOeval_faster
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            self.COCO = COCO
            self._eval = COCOeval

    def evaluator(self, coco_gt: Any, coco_dt: Any, iou_type: str) -> Any:
        """A COCOeval-compatible object: ``params``, ``evaluate()``, ``accumulate()``,
        ``summarize()`` (prints the 12 lines), ``stats`` [12], ``eval["precision"]``."""
        if self.name == "faster_coco_eval":
            return self._eval(coco_gt, coco_dt, iouType=iou_type, print_function=print)
        return self._eval(coco_gt, coco_dt, iouType=iou_type)


def coco_backend(name: str | None = None) -> CocoBackend:
    """The backend named by ``name``, else ``$PPDET_COCO_EVAL``, else faster-coco-eval when it is
    installed, else pycocotools."""
    name = name or os.environ.get("PPDET_COCO_EVAL") or "auto"
    if name == "auto":
        fast = importlib.util.find_spec("faster_coco_eval") is not None
        name = "faster_coco_eval" if fast else "pycocotools"
    if name not in BACKENDS:
        raise ValueError(
            f"COCO evaluation backend {name!r} is unknown; use one of {', '.join(BACKENDS)} "
            "(or auto)"
        )
    if name == "faster_coco_eval" and importlib.util.find_spec("faster_coco_eval") is None:
        raise ValueError(
            "COCO evaluation backend faster_coco_eval is not installed: "
            "pip install faster-coco-eval, or use pycocotools"
        )
    return CocoBackend(name)
