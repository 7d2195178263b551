"""COCO-style box (and instance mask) evaluation with pycocotools.

The evaluator gathers the model's detections as COCO result dicts (one per box; with masks
also one RLE ``segmentation`` result per box), then runs ``COCOeval`` on the dataset's
annotation json and returns the 12 standard AP/AR numbers (``mask_``-prefixed for masks).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

import numpy as np

from ppdet.atomic_io import atomic_write_text
from ppdet.config.registry import register
from ppdet.evaluation.coco_backend import coco_backend

# Names of COCOeval.stats[0..11], in order.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def split_masks(mask: Any, counts: np.ndarray, sizes: Any = None) -> list[np.ndarray]:
    """Per-image binary masks from a model's ``mask`` output, aligned with ``bbox`` rows.

    ``mask`` is one array/paddle Tensor [N, H, W] (the eval contract: the batch's largest
    original size, split by ``counts`` [B]) or a list of B uint8 arrays [n_b, H_b, W_b].
    ``sizes`` [B, 2] (h, w), if given, crops image b's masks to its original size.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)  # [B]
    if isinstance(mask, (list, tuple)):
        parts = [np.asarray(m.numpy() if hasattr(m, "numpy") else m) for m in mask]
    else:
        full = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask)  # [N, H, W]
        if full.shape[0] != counts.sum():
            raise ValueError(f"mask has {full.shape[0]} rows but bbox_num sums to {counts.sum()}")
        parts = np.split(full, np.cumsum(counts)[:-1]) if len(counts) else []
    if len(parts) != len(counts) or any(len(p) != n for p, n in zip(parts, counts.tolist())):
        raise ValueError(
            f"mask rows per image {[len(p) for p in parts]} differ from bbox_num {counts.tolist()}"
        )
    if sizes is not None:
        sizes = np.asarray(sizes.numpy() if hasattr(sizes, "numpy") else sizes).reshape(-1, 2)
        parts = [p[:, : int(h), : int(w)] for p, (h, w) in zip(parts, sizes)]
    return [p.astype(np.uint8, copy=False) for p in parts]


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A binary mask [H, W] as COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def split_by_image(bbox: np.ndarray, bbox_num: np.ndarray) -> list[np.ndarray]:
    """Split the batch's stacked detections ``bbox`` [N,6] into one [n_i,6] array per image.

    ``bbox_num`` [B] holds n_i; it must sum to N.
    """
    bbox = np.asarray(bbox, dtype=np.float32).reshape(-1, 6)  # [N, 6]
    counts = np.asarray(bbox_num, dtype=np.int64).reshape(-1)  # [B]
    if counts.sum() != len(bbox):
        raise ValueError(f"bbox_num sums to {counts.sum()} but bbox has {len(bbox)} rows")
    return np.split(bbox, np.cumsum(counts)[:-1])


def detections_to_coco(
    im_id: int, dets: np.ndarray, clsid2catid: dict[int, int]
) -> list[dict[str, Any]]:
    """One image's detections [n,6] (class id, score, x1, y1, x2, y2) as COCO result dicts.

    Rows with a negative class id (padding some post-processors emit) are skipped.
    """
    results = []
    for cls, score, x1, y1, x2, y2 in dets.tolist():
        cls = int(round(cls))
        if cls < 0:
            continue
        results.append(
            {
                "image_id": int(im_id),
                "category_id": int(clsid2catid[cls]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],  # x, y, w, h in pixels
                "score": score,
            }
        )
    return results


@register("evaluator")
class COCOEvaluator:
    """COCO bbox mAP over a dataset with ``anno_path``, ``clsid2catid`` and ``records``.

    Args:
        dataset: gives ``anno_path`` (COCO json), ``clsid2catid`` (0-based class id ->
            category id), ``label_list`` and ``records`` (whose ``im_id`` select the images
            that are evaluated).
        output_dir: if set, ``accumulate`` also writes the detections to
            ``<output_dir>/bbox.json`` (and ``mask.json`` when masks were given).
        backend: "pycocotools", "faster_coco_eval" or None (automatic: ``coco_backend.py``).
        classwise: also report one AP per category (keys ``"AP/<name>"``), print them, and
            keep each category's precision-recall curve at IoU 0.5 in ``pr_curves``
            (``{name: (recall [101], precision [101])}``, area all, 100 detections).

    When updates carry ``mask``, ``accumulate`` also runs the ``segm`` evaluation and adds
    ``mask_AP``, ``mask_AP50``, ... (the 12 stats, prefixed) to the bbox metrics.
    """

    primary_metric = "AP"
    supports_masks = True  # update(..., mask=...) is accepted (the Trainer checks this)

    def __init__(
        self,
        dataset: Any,
        output_dir: str | None = None,
        classwise: bool = False,
        backend: str | None = None,
    ):
        self.backend = coco_backend(backend)
        # datasets keep anno_path relative to dataset_dir; get_anno() gives the full path
        self.anno_path = dataset.get_anno() if hasattr(dataset, "get_anno") else dataset.anno_path
        self.clsid2catid = {int(k): int(v) for k, v in dataset.clsid2catid.items()}
        self.label_list = list(getattr(dataset, "label_list", []) or [])
        records = getattr(dataset, "records", None) or []
        self.im_ids = sorted({int(np.asarray(r["im_id"]).reshape(-1)[0]) for r in records})
        # dataset order of each image: merged shards are put back in it (``merge``)
        self.position = {
            int(np.asarray(r["im_id"]).reshape(-1)[0]): i for i, r in enumerate(records)
        }
        self.output_dir = output_dir
        self.classwise = classwise
        self.results: list[dict[str, Any]] = []
        self.mask_results: list[dict[str, Any]] = []
        self.has_masks = False
        self.pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def reset(self) -> None:
        """Forget all detections gathered so far."""
        self.pr_curves = {}
        self.results = []
        self.mask_results = []
        self.has_masks = False

    def update(
        self, im_id: np.ndarray, bbox: np.ndarray, bbox_num: np.ndarray, mask: Any = None
    ) -> None:
        """Add one batch: ``im_id`` [B] (or [B,1]), ``bbox`` [N,6], ``bbox_num`` [B].

        ``mask`` (optional): binary masks in original-image pixels, row-aligned with ``bbox``:
        a list of B uint8 arrays [n_b, H_b, W_b], or an array/Tensor [N, H, W] (one size).
        """
        ids = np.asarray(im_id).reshape(-1)  # [B]
        per_image = split_by_image(bbox, bbox_num)
        if len(per_image) != len(ids):
            raise ValueError(f"{len(ids)} image ids but bbox_num has {len(per_image)} entries")
        for i, dets in zip(ids.tolist(), per_image):
            self.results.extend(detections_to_coco(i, dets, self.clsid2catid))
        if mask is None:
            return
        self.has_masks = True
        for i, dets, masks in zip(ids.tolist(), per_image, split_masks(mask, bbox_num)):
            for det, m in zip(dets.tolist(), masks):
                cls = int(round(det[0]))
                if cls < 0:
                    continue
                self.mask_results.append(
                    {
                        "image_id": int(i),
                        "category_id": int(self.clsid2catid[cls]),
                        "segmentation": encode_mask(m),
                        "score": det[1],
                    }
                )

    def state(self) -> dict[str, Any]:
        """The detections gathered so far (plain lists and dicts), for ``merge`` in another
        process (distributed evaluation: ``evaluation/distributed.py``)."""
        return {
            "results": self.results,
            "mask_results": self.mask_results,
            "has_masks": self.has_masks,
        }

    def merge(self, states: list[dict[str, Any]]) -> None:
        """Add the detections of other evaluators' ``state()`` (each image's detections come
        from one of them) and put them in dataset order, as one evaluator over the whole
        dataset would hold them; COCOeval's numbers do not depend on that order anyway."""
        for state in states:
            self.results.extend(state["results"])
            self.mask_results.extend(state["mask_results"])
            self.has_masks = self.has_masks or bool(state["has_masks"])
        last = len(self.position)
        for items in (self.results, self.mask_results):
            items.sort(key=lambda r: self.position.get(r["image_id"], last))  # stable

    def accumulate(self) -> dict[str, float]:
        """Run COCOeval (bbox, and segm if masks were given) on the gathered detections; print
        and return the 12 stats (``mask_``-prefixed for segm)."""
        if self.output_dir:
            path = os.path.join(self.output_dir, "bbox.json")
            atomic_write_text(path, json.dumps(self.results))
            if self.has_masks:
                path = os.path.join(self.output_dir, "mask.json")
                atomic_write_text(path, json.dumps(self.mask_results))
        metrics = self._evaluate(self.results, "bbox", "")
        if self.has_masks:
            metrics.update(self._evaluate(self.mask_results, "segm", "mask_"))
            print(
                f"COCO segm: mask AP = {metrics['mask_AP']:.4f}, "
                f"mask AP50 = {metrics['mask_AP50']:.4f}"
            )
        return metrics

    def _evaluate(self, results: list[dict], iou_type: str, prefix: str) -> dict[str, float]:
        """COCOeval of one result list (``iou_type`` "bbox" or "segm"); keys get ``prefix``."""
        if not results:
            print(f"COCO {iou_type} eval: no detections at all; every AP and AR is 0.")
            return {prefix + name: 0.0 for name in STAT_NAMES}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' progress chatter
            coco_gt = self.backend.COCO(self.anno_path)
            unknown = {r["image_id"] for r in results} - set(coco_gt.getImgIds())
            if unknown:
                raise ValueError(
                    f"detections for image ids not in {self.anno_path}: {sorted(unknown)[:5]}"
                )
            if iou_type == "segm":
                missing = [
                    a["id"]
                    for a in coco_gt.dataset.get("annotations", [])
                    if not a.get("segmentation")
                ]
                if missing:
                    raise ValueError(
                        f"{self.anno_path}: annotation ids {missing[:5]} have no segmentation; "
                        "mask AP needs instance masks in the ground truth"
                    )
            coco_dt = coco_gt.loadRes([dict(r) for r in results])  # loadRes adds keys
            coco_eval = self.backend.evaluator(coco_gt, coco_dt, iou_type)
            if self.im_ids:
                coco_eval.params.imgIds = self.im_ids
            coco_eval.evaluate()
            coco_eval.accumulate()
        if iou_type == "segm":
            print("COCO segm (mask) evaluation:")
        coco_eval.summarize()  # prints the 12 standard lines
        metrics = {prefix + name: float(v) for name, v in zip(STAT_NAMES, coco_eval.stats)}
        if self.classwise:
            metrics.update(self._per_class_ap(coco_eval, prefix))
        return metrics

    def _per_class_ap(self, coco_eval: Any, prefix: str = "") -> dict[str, float]:
        """AP@[.5:.95] per category from ``coco_eval.eval["precision"]``, printed as a table."""
        # precision: [T iou thresholds, R recall points, K categories, A areas, M max dets]
        precision = coco_eval.eval["precision"]
        catid2clsid = {c: k for k, c in self.clsid2catid.items()}
        out = {}
        for k, cat_id in enumerate(coco_eval.params.catIds):
            p = precision[:, :, k, 0, -1]  # area "all", largest maxDets
            p = p[p > -1]
            ap = float(p.mean()) if p.size else float("nan")
            cls = catid2clsid.get(cat_id)
            name = (
                self.label_list[cls]
                if cls is not None and cls < len(self.label_list)
                else str(cat_id)
            )
            out[f"{prefix}AP/{name}"] = ap
            if not prefix:  # box curves at IoU 0.5 (iouThrs[0]); -1 marks "no ground truth"
                recall = np.asarray(coco_eval.params.recThrs, np.float64)  # [R]
                curve = precision[0, :, k, 0, -1]  # [R]
                if (curve > -1).any():
                    self.pr_curves[name] = (recall, np.clip(curve, 0.0, None))
        width = max([len(n) for n in out] + [8])
        print(f"Per-category {'mask' if prefix else 'bbox'} AP:")
        for name, ap in out.items():
            print(f"  {name[len(prefix) + 3 :]:<{width}} {ap:.3f}")
        return out
