"""Evaluators: ``reset()``, ``update(im_id, bbox, bbox_num)``, ``accumulate() -> dict``.

Each has a ``primary_metric`` attribute naming the key of the returned dict that picks the
best model.
"""

from __future__ import annotations

from typing import Any

from .coco_eval import COCOEvaluator
from .voc_eval import VOCEvaluator

EVALUATORS = {"COCO": COCOEvaluator, "VOC": VOCEvaluator}


def build_evaluator(metric: str, dataset: Any, **kw: Any) -> COCOEvaluator | VOCEvaluator:
    """The evaluator for ``metric`` ("COCO" or "VOC", any case) over ``dataset``.

    ``kw`` go to its constructor (COCO: output_dir, classwise; VOC: map_type, iou_thresh,
    ignore_difficult, output_dir).
    """
    key = str(metric).upper()
    if key not in EVALUATORS:
        raise ValueError(f"unknown metric {metric!r}; accepted: {', '.join(EVALUATORS)}")
    return EVALUATORS[key](dataset, **kw)


__all__ = ["COCOEvaluator", "VOCEvaluator", "build_evaluator"]
