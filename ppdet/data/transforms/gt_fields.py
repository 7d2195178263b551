"""The per-box ground-truth fields of a sample, kept aligned when boxes are dropped or added."""

from __future__ import annotations

import numpy as np

# Every per-box array of a sample: row i of each describes box i.
GT_FIELDS = ("gt_bbox", "gt_class", "gt_score", "is_crowd", "difficult")


def select_gt(sample: dict, keep: np.ndarray) -> dict:
    """Keep the boxes selected by ``keep`` (bool mask [M] or index array) in every gt field."""
    for key in GT_FIELDS:
        if key in sample:
            sample[key] = sample[key][keep]
    return sample


def num_gt(sample: dict) -> int:
    """Number of boxes in the sample (0 when it has no ``gt_bbox``)."""
    return len(sample["gt_bbox"]) if "gt_bbox" in sample else 0
