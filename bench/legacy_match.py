"""Detections and tensors of PaddleDetection v0.1 (the legacy oracle's npz) against ours:
matching, v0.1's input feeds mapped to our eval inputs, v0.1's output conventions.

Used by ``bench/compare_legacy.py`` and its diagnoses; numpy only.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

IOU_MIN = 0.99
SCORE_TOL = 1e-3
__all__ = [
    "IOU_MIN",
    "SCORE_TOL",
    "MatchResult",
    "box_iou",
    "compare_rois",
    "diff_text",
    "match",
    "network_input",
    "original_size",
    "photo_stems",
    "reference_detections",
    "to_numpy",
]


# ---------------------------------------------------------------- matching


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [N, 4] and b [M, 4] (x1y1x2y2, continuous: no +1) -> [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)  # [N, M]
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclasses.dataclass
class MatchResult:
    """How many of the reference's detections have a partner among ours.

    matched: same label, IoU >= iou_min and |score diff| <= score_tol (one-to-one);
    box_only: of the unmatched, those with a same-label IoU >= iou_min partner (score differs);
    score_only: of the unmatched, those with a same-label partner within score_tol (box differs).
    """

    reference: int
    ours: int
    matched: int
    box_only: int = 0
    score_only: int = 0

    def __add__(self, other: MatchResult) -> MatchResult:
        return MatchResult(
            *(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other)))
        )


def match(
    ref: np.ndarray,
    ours: np.ndarray,
    iou_min: float = IOU_MIN,
    score_tol: float = SCORE_TOL,
) -> MatchResult:
    """Match detections ref [N, 6] and ours [M, 6] (rows label, score, x1, y1, x2, y2).

    Greedy one-to-one, reference rows by decreasing score: each takes the unmatched row of
    ours with its label, |score difference| <= score_tol and the highest IoU >= iou_min.
    """
    ref = np.asarray(ref, np.float64).reshape(-1, 6)
    ours = np.asarray(ours, np.float64).reshape(-1, 6)
    if not len(ref) or not len(ours):
        return MatchResult(len(ref), len(ours), 0)
    iou = box_iou(ref[:, 2:], ours[:, 2:])  # [N, M]
    same = ref[:, None, 0] == ours[None, :, 0]
    close = np.abs(ref[:, None, 1] - ours[None, :, 1]) <= score_tol
    ok = same & close & (iou >= iou_min)
    taken = np.zeros(len(ours), bool)
    matched = box_only = score_only = 0
    for i in np.argsort(-ref[:, 1], kind="stable"):
        cand = np.where(ok[i] & ~taken, iou[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= 0:
            taken[j] = True
            matched += 1
        elif (same[i] & (iou[i] >= iou_min)).any():
            box_only += 1
        elif (same[i] & close[i]).any():
            score_only += 1
    return MatchResult(len(ref), len(ours), matched, box_only, score_only)


# ---------------------------------------------------------------- inputs


def photo_stems(z: np.lib.npyio.NpzFile) -> list[str]:
    return [os.path.splitext(str(n))[0] for n in z["images"]]


def network_input(family: str, z, p: str) -> dict[str, np.ndarray]:
    """v0.1's fed tensors of photo ``p`` -> our eval inputs {image, im_shape, scale_factor}.

    YOLOv3 / SSD: the image was resized to H x W with independent scales from the original
    (h0, w0) (``im_size`` / ``im_shape``): im_shape = (H, W), scale_factor = (H/h0, W/w0).
    R-CNN / RetinaNet: ``im_info`` = (padded H, padded W, s), one scale s for both axes and
    ``im_shape`` = (h0, w0, 1): im_shape = round((h0, w0) * s), scale_factor = (s, s).
    """
    image = z[f"{p}/image"].astype(np.float32)
    height, width = image.shape[2:]
    if family in ("yolov3", "ssd"):
        h0, w0 = (z[f"{p}/im_size"] if family == "yolov3" else z[f"{p}/im_shape"])[0][:2]
        im_shape = [height, width]
        scale = [height / float(h0), width / float(w0)]
    else:
        s = float(z[f"{p}/im_info"][0][2])
        h0, w0 = z[f"{p}/im_shape"][0][:2]
        im_shape = [np.round(h0 * s), np.round(w0 * s)]
        scale = [s, s]
    return {
        "image": image,
        "im_shape": np.asarray([im_shape], np.float32),
        "scale_factor": np.asarray([scale], np.float32),
    }


def original_size(family: str, z, p: str) -> tuple[float, float]:
    key = "im_size" if family == "yolov3" else "im_shape"
    h0, w0 = z[f"{p}/{key}"][0][:2]
    return float(h0), float(w0)


def reference_detections(family: str, z, p: str) -> np.ndarray:
    """v0.1's ``bbox`` rows in our convention: labels 0-based foreground, boxes in original
    pixels (SSD's normalised boxes times the original size, as v0.1's ``bbox2out``)."""
    raw = np.asarray(z[f"{p}/bbox"], np.float64)
    if raw.shape[-1] != 6 or (len(raw) == 1 and raw[0, 0] < 0):  # fluid's "nothing detected"
        return np.zeros((0, 6))
    det = raw.reshape(-1, 6).copy()
    if family in ("ssd", "rcnn", "retinanet"):
        det[:, 0] -= 1  # background is class 0 in v0.1 (RetinaNet: label = channel + 1)
    if family == "ssd":
        h0, w0 = original_size(family, z, p)
        det[:, 2:] *= np.array([w0, h0, w0, h0])
    return det


def to_numpy(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def diff_text(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shape {list(b.shape)} vs {list(a.shape)}"
    return f"max|d| {np.abs(a.astype(np.float64) - b).max():.3g}" if a.size else "empty"


def compare_rois(ref: np.ndarray, ours: np.ndarray) -> str:
    """Proposals [R, 4] input pixels: counts, share of v0.1's with an IoU >= 0.99 partner among
    ours, and the largest coordinate difference to that best partner (order-free: saturated
    scores tie, and ties may be ordered differently)."""
    if not len(ref) or not len(ours):
        return f"{len(ours)} vs {len(ref)} rows"
    iou = box_iou(ref, ours)  # [R_ref, R_ours]
    best = iou.argmax(1)
    share = (iou.max(1) >= IOU_MIN).mean()
    worst = np.abs(ref.astype(np.float64) - ours[best]).max()
    return f"{len(ours)}/{len(ref)} rows, {100 * share:.1f}% IoU>=0.99, max|d| {worst:.3g} px"
