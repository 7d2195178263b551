"""Evaluators: ``reset()``, ``update(im_id, bbox, bbox_num)``, ``accumulate() -> dict``.

Each has a ``primary_metric`` attribute naming the key of the returned dict that picks the
best model.
"""

from __future__ import annotations

from typing import Any

from .coco_eval import COCOEvaluator
from .voc_eval import VOCEvaluator

EVALUATORS = {"COCO": COCOEvaluator, "VOC": VOCEvaluator}


def build_evaluator(
    metric: str, dataset: Any, map_type: str | None = None, **kw: Any
) -> COCOEvaluator | VOCEvaluator:
    """The evaluator for ``metric`` ("COCO" or "VOC", any case) over ``dataset``.

    ``map_type`` (the config's key: "11point" or "area") applies to VOC only. ``kw`` go to the
    constructor (both: output_dir, classwise; COCO: backend; VOC: iou_thresh,
    ignore_difficult).
    """
    key = str(metric).upper()
    if key not in EVALUATORS:
        raise ValueError(f"unknown metric {metric!r}; accepted: {', '.join(EVALUATORS)}")
    if key == "VOC" and map_type is not None:
        kw["map_type"] = map_type
    return EVALUATORS[key](dataset, **kw)


__all__ = ["COCOEvaluator", "VOCEvaluator", "build_evaluator"]
