"""Pascal VOC-style mAP: per-class AP from greedy score-ordered matching.

For every class, detections over all images are sorted by score (highest first). Each one
is matched to the ground-truth box of that class in its image with the largest IoU: if that
IoU exceeds ``iou_thresh`` and the box is not yet taken it is a true positive, a second hit on
a taken box is a false positive, and a hit on a *difficult* box counts as neither (when
``ignore_difficult``). Anything else is a false positive. Recall is over non-difficult boxes.

AP is then read off the precision/recall curve in two ways, both always computed:
  * "11point" (VOC2007): mean over recall r in {0, 0.1, ..., 1} of max precision at recall >= r;
  * "area" (VOC2010+): area under the monotone (right-to-left max) precision envelope.
Boxes are in pixels without the legacy "+1" width convention.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import numpy as np

from ppdet.atomic_io import atomic_write_text
from ppdet.config.registry import register
from ppdet.evaluation.coco_eval import split_by_image

MAP_TYPES = ("11point", "area")


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box`` [4] with each of ``boxes`` [M,4] (x1y1x2y2 pixels) -> [M]."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def ap_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 AP: mean over r in {0, .1, ..., 1} of max(precision[recall >= r]) (0 if none)."""
    total = 0.0
    for r in np.linspace(0.0, 1.0, 11):
        mask = recall >= r - 1e-12
        total += float(precision[mask].max()) if mask.any() else 0.0
    return total / 11.0


def ap_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the precision envelope (precision made non-increasing)."""
    rec = np.concatenate([[0.0], recall, [1.0]])
    prec = np.concatenate([[0.0], precision, [0.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]  # envelope: max precision to the right
    steps = np.nonzero(rec[1:] != rec[:-1])[0]  # where recall changes
    return float(np.sum((rec[steps + 1] - rec[steps]) * prec[steps + 1]))


def match_class(
    dets: list[tuple[int, float, np.ndarray]],
    gts: dict[int, tuple[np.ndarray, np.ndarray]],
    iou_thresh: float,
    ignore_difficult: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy matching of one class's detections to its ground truth.

    Args:
        dets: (im_id, score, box [4]) for every detection of the class, any order.
        gts: im_id -> (boxes [M,4], difficult [M] bool) of the class.
    Returns:
        tp, fp: [D] 0/1 flags in descending-score order (an ignored detection has both 0);
        npos: number of ground-truth boxes recall is measured against.
    """
    if ignore_difficult:
        npos = sum(int((~d).sum()) for _, d in gts.values())
    else:
        npos = sum(len(d) for _, d in gts.values())
    order = sorted(range(len(dets)), key=lambda i: -dets[i][1])  # stable for equal scores
    taken = {im: np.zeros(len(d), dtype=bool) for im, (_, d) in gts.items()}
    tp = np.zeros(len(dets))
    fp = np.zeros(len(dets))
    for rank, i in enumerate(order):
        im_id, _, box = dets[i]
        if im_id not in gts or len(gts[im_id][0]) == 0:
            fp[rank] = 1
            continue
        boxes, difficult = gts[im_id]
        ious = iou_one_to_many(box, boxes)
        j = int(ious.argmax())
        if ious[j] <= iou_thresh:
            fp[rank] = 1
        elif ignore_difficult and difficult[j]:
            continue  # neither TP nor FP
        elif taken[im_id][j]:
            fp[rank] = 1
        else:
            taken[im_id][j] = True
            tp[rank] = 1
    return tp, fp, npos


def precision_recall(tp: np.ndarray, fp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative recall and precision [D] from score-ordered TP/FP flags [D].

    Ignored detections (tp = fp = 0) add no point to the curve.
    """
    keep = (tp + fp) > 0
    tp_c = np.cumsum(tp[keep])
    fp_c = np.cumsum(fp[keep])
    recall = tp_c / max(npos, 1)
    precision = tp_c / np.maximum(tp_c + fp_c, 1e-12)
    return recall, precision


@register("evaluator")
class VOCEvaluator:
    """Pascal VOC mAP over a dataset's ``records`` (ground truth looked up by ``im_id``).

    Args:
        dataset: gives ``records`` (``im_id``, ``gt_bbox`` [M,4], ``gt_class`` [M,1],
            ``difficult`` [M,1]) and ``label_list``.
        map_type: "11point" or "area": which AP ``"mAP"`` and the per-class keys report.
        iou_thresh: a detection matches a box when their IoU is strictly greater.
        ignore_difficult: difficult boxes are neither TP nor FP nor counted in recall;
            if False they are ordinary ground truth.
        output_dir: if set, ``accumulate`` also writes the metrics dict to
            ``<output_dir>/voc_metrics.json``.
        classwise: print one AP per class and keep each class's precision-recall curve in
            ``pr_curves`` (``{name: (recall [D], precision [D])}``).
    Returns from ``accumulate``: ``"mAP"``, ``"mAP_11point"``, ``"mAP_area"`` and
    ``"AP/<class name>"`` for each class with ground truth.
    """

    primary_metric = "mAP"

    def __init__(
        self,
        dataset: Any,
        map_type: str = "11point",
        iou_thresh: float = 0.5,
        ignore_difficult: bool = True,
        output_dir: str | None = None,
        classwise: bool = False,
    ):
        if map_type not in MAP_TYPES:
            raise ValueError(f"map_type must be one of {', '.join(MAP_TYPES)}; got {map_type!r}")
        self.map_type = map_type
        self.iou_thresh = float(iou_thresh)
        self.ignore_difficult = ignore_difficult
        self.output_dir = output_dir
        self.classwise = classwise
        self.pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.label_list = list(dataset.label_list)
        # gts[class id][im_id] = (boxes [M,4], difficult [M] bool)
        self.gts: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
        self.known_ids: set[int] = set()
        self.position: dict[int, int] = {}  # im_id -> index in the dataset order
        for rec in dataset.records:
            self._add_ground_truth(rec)
        self.reset()

    def _add_ground_truth(self, rec: dict[str, Any]) -> None:
        im_id = int(np.asarray(rec["im_id"]).reshape(-1)[0])
        self.known_ids.add(im_id)
        self.position.setdefault(im_id, len(self.position))
        boxes = np.asarray(rec.get("gt_bbox", np.zeros((0, 4))), np.float64).reshape(-1, 4)
        classes = np.asarray(rec.get("gt_class", np.zeros((0, 1))), np.int64).reshape(-1)
        difficult = rec.get("difficult")
        if difficult is None:
            difficult = np.zeros(len(classes), dtype=bool)
        difficult = np.asarray(difficult).reshape(-1).astype(bool)  # [M]
        for c in np.unique(classes).tolist():
            m = classes == c
            self.gts[c][im_id] = (boxes[m], difficult[m])

    def reset(self) -> None:
        """Forget all detections gathered so far."""
        # dets[class id] = [(im_id, score, box [4]), ...]
        self.dets: dict[int, list[tuple[int, float, np.ndarray]]] = defaultdict(list)
        self.num_dets = 0
        self.pr_curves = {}

    def update(self, im_id: np.ndarray, bbox: np.ndarray, bbox_num: np.ndarray) -> None:
        """Add one batch: ``im_id`` [B] (or [B,1]), ``bbox`` [N,6], ``bbox_num`` [B]."""
        ids = np.asarray(im_id).reshape(-1)  # [B]
        per_image = split_by_image(bbox, bbox_num)
        if len(per_image) != len(ids):
            raise ValueError(f"{len(ids)} image ids but bbox_num has {len(per_image)} entries")
        for i, dets in zip(ids.tolist(), per_image):
            if i not in self.known_ids:
                raise ValueError(f"detections for im_id {i}, which is not in the dataset records")
            for row in dets.astype(np.float64):
                cls = int(round(row[0]))
                if cls < 0:
                    continue
                self.dets[cls].append((int(i), float(row[1]), row[2:6]))
                self.num_dets += 1

    def state(self) -> dict[str, Any]:
        """The detections gathered so far, for ``merge`` in another process."""
        return {"dets": dict(self.dets), "num_dets": self.num_dets}

    def merge(self, states: list[dict[str, Any]]) -> None:
        """Add the detections of other evaluators' ``state()`` (each image's detections come
        from one of them)."""
        for state in states:
            for cls, dets in state["dets"].items():
                self.dets[int(cls)].extend(dets)
            self.num_dets += int(state["num_dets"])

    def accumulate(self) -> dict[str, float]:
        """Per-class AP and their mean over classes that have ground truth; printed too.

        Detections of equal score are matched in dataset order of their images (then in the
        order the model gave them), so the numbers do not depend on the order of ``update``
        calls or on how the images were shared among processes (``merge``).
        """
        if self.num_dets == 0:
            print("VOC eval: no detections at all; mAP is 0.")
        aps: dict[str, dict[int, float]] = {t: {} for t in MAP_TYPES}
        last = len(self.position)
        for c in sorted(self.gts):
            dets = sorted(self.dets.get(c, []), key=lambda d: self.position.get(d[0], last))
            tp, fp, npos = match_class(dets, self.gts[c], self.iou_thresh, self.ignore_difficult)
            if npos == 0:
                continue  # only difficult boxes: no recall to measure
            recall, precision = precision_recall(tp, fp, npos)
            aps["11point"][c] = ap_11point(recall, precision)
            aps["area"][c] = ap_area(recall, precision)
            if self.classwise:
                self.pr_curves[self._name(c)] = (recall, precision)
        if not aps["area"]:
            print("VOC eval: no ground truth boxes to evaluate against; mAP is 0.")

        def mean(values: dict[int, float]) -> float:
            return float(np.mean(list(values.values()))) if values else 0.0

        metrics = {
            "mAP": mean(aps[self.map_type]),
            "mAP_11point": mean(aps["11point"]),
            "mAP_area": mean(aps["area"]),
        }
        for c, ap in aps[self.map_type].items():
            metrics[f"AP/{self._name(c)}"] = ap
        print(
            f"VOC mAP@{self.iou_thresh:g} ({self.map_type}): {metrics['mAP']:.4f}  "
            f"[11point {metrics['mAP_11point']:.4f}, area {metrics['mAP_area']:.4f}, "
            f"{len(aps['area'])} classes]"
        )
        if self.classwise:
            width = max([len(self._name(c)) for c in aps[self.map_type]] + [8])
            print(f"Per-class AP ({self.map_type}):")
            for c, ap in aps[self.map_type].items():
                print(f"  {self._name(c):<{width}} {ap:.3f}")
        if self.output_dir:
            path = os.path.join(self.output_dir, "voc_metrics.json")
            atomic_write_text(path, json.dumps(metrics, indent=1))
        return metrics

    def _name(self, cls: int) -> str:
        return self.label_list[cls] if 0 <= cls < len(self.label_list) else str(cls)
