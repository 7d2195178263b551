"""Behaviour fingerprints: the detections a model's weights must give on the bundled samples.

``tools/publish_model.py`` computes one into ``meta.json`` and the index entry;
``python -m ppdet.zoo verify NAME --behaviour`` fetches the weights, runs them through the
public inference path (``ppdet.engine.predictor.Predictor``: the config's TestReader and
``model(batch)`` in eval mode) on the same images and fails on drift, naming each image and
detection that moved. A fingerprint is plain data (JSON in meta.json, YAML in the index)::

    {"version": 1, "min_score": 0.1, "max_per_image": 10,
     "images": {"sample_0.png": {"pixels": <sha256 of the pixels>,
                                 "detections": [[class, score, x1, y1, x2, y2], ...]}}}

``detections``: the image's ``max_per_image`` highest-scoring detections with score >=
``min_score``, best first; class ids 0-based, scores rounded to 1e-5, boxes in original-image
pixels rounded to 0.01. Comparison: every recorded detection must still be found (same class,
score within ``score_tol``, every box side within ``box_tol`` pixels), and no detection may
appear above the recorded cut-off (the lowest recorded score, or ``min_score`` when fewer
were recorded) plus ``score_tol``.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ppdet.errors import PpdetError
from ppdet.zoo.samples import SAMPLES_VERSION, pixel_sha256, sample_images, write_samples

__all__ = [
    "BOX_TOL",
    "SCORE_TOL",
    "FingerprintError",
    "compare",
    "compute",
    "run_samples",
    "verify_entry",
]

VERSION = SAMPLES_VERSION
MIN_SCORE = 0.1
MAX_PER_IMAGE = 10
SCORE_TOL = 2e-3  # absolute score difference still counted as the same detection
BOX_TOL = 0.5  # pixels: largest difference of a box side still counted as the same box


class FingerprintError(PpdetError, ValueError):
    """A fingerprint that cannot be made or checked (not drift): one line saying why."""


def run_samples(cfg, model) -> dict[str, np.ndarray]:
    """``{sample name: float [N, 6] (class, score, x1, y1, x2, y2)}``: ``model`` (weights already
    loaded) run on every sample image through the config's TestReader, in eval mode."""
    from ppdet.engine.predictor import Predictor

    with tempfile.TemporaryDirectory(prefix="ppdet-samples-") as folder:
        paths = write_samples(folder)
        results, _ = Predictor(cfg, "", model=model).predict(paths)
        by_file = {
            os.path.basename(r["im_file"]): np.asarray(r["bbox"], np.float64) for r in results
        }
    missing = [os.path.basename(p) for p in paths if os.path.basename(p) not in by_file]
    if missing:
        raise FingerprintError(f"the inference path gave no result for {', '.join(missing)}")
    return {name: by_file[name].reshape(-1, 6) for name, _ in sample_images()}


def _top(dets: np.ndarray, min_score: float, k: int) -> np.ndarray:
    dets = dets[dets[:, 1] >= min_score]
    order = np.argsort(-dets[:, 1], kind="stable")
    return dets[order[:k]]


def compute(cfg, model, min_score: float = MIN_SCORE, max_per_image: int = MAX_PER_IMAGE) -> dict:
    """The fingerprint of ``model`` (see the module docstring)."""
    found = run_samples(cfg, model)
    images = {}
    for name, image in sample_images():
        rows = _top(found[name], min_score, max_per_image)
        images[name] = {
            "pixels": pixel_sha256(image),
            "detections": [
                [int(r[0]), round(float(r[1]), 5), *(round(float(v), 2) for v in r[2:6])]
                for r in rows
            ],
        }
    return {
        "version": VERSION,
        "min_score": min_score,
        "max_per_image": max_per_image,
        "images": images,
    }


def _check_samples(expected: dict) -> None:
    """The fingerprint must be about the samples this version draws (else it cannot be checked)."""
    if expected.get("version") != VERSION:
        raise FingerprintError(
            f"the fingerprint is version {expected.get('version')}, this ppdet draws sample set "
            f"version {VERSION}; publish the model again to refresh it"
        )
    current = {name: pixel_sha256(image) for name, image in sample_images()}
    for name, record in expected["images"].items():
        if current.get(name) != record.get("pixels"):
            raise FingerprintError(
                f"sample image {name} is not the one the fingerprint was made on; publish the "
                "model again to refresh it"
            )


def _box_text(row) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in row[2:6]) + "]"


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1y1x2y2 box [4] with boxes [N, 4] (pixels)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _drifted(image: str, i: int, row: np.ndarray, dets: np.ndarray, free: np.ndarray) -> str:
    """Describe recorded detection ``row`` that has no match; the nearest free detection of its
    class that overlaps it (IoU > 0.5) is taken as its moved self (marked used in ``free``)."""
    cls = int(row[0])
    head = f"{image} #{i} (class {cls}, score {row[1]:.4f}, box {_box_text(row)})"
    same = np.flatnonzero(free & (dets[:, 0] == cls))
    if not len(same):
        return f"{head}: no class-{cls} detection any more"
    overlap = _iou(row[2:6], dets[same, 2:6])
    j = same[np.argmax(overlap)]
    if overlap.max() <= 0.5:
        return f"{head}: no class-{cls} detection there any more"
    free[j] = False
    near = dets[j]
    return (
        f"{head}: now score {near[1]:.4f} ({near[1] - row[1]:+.4f}), box {_box_text(near)} "
        f"(sides move up to {np.abs(near[2:6] - row[2:6]).max():.2f} px)"
    )


def compare(
    expected: dict,
    found: dict[str, np.ndarray],
    score_tol: float = SCORE_TOL,
    box_tol: float = BOX_TOL,
) -> tuple[list[str], int]:
    """(drift descriptions, number of recorded detections checked); no drift = ``[]``.

    ``found``: :func:`run_samples` output. Raises FingerprintError when ``expected`` is about
    other sample images.
    """
    _check_samples(expected)
    min_score, k = float(expected["min_score"]), int(expected["max_per_image"])
    drift, checked = [], 0
    for image, record in expected["images"].items():
        rows = [np.asarray(r, np.float64) for r in record["detections"]]
        dets = found.get(image, np.zeros((0, 6)))
        dets = dets[dets[:, 1] >= min_score - score_tol]
        free = np.ones(len(dets), bool)
        for i, row in enumerate(rows):
            checked += 1
            ok = (
                free
                & (dets[:, 0] == row[0])
                & (np.abs(dets[:, 1] - row[1]) <= score_tol)
                & (np.abs(dets[:, 2:6] - row[2:6]).max(axis=1, initial=0) <= box_tol)
            )
            if ok.any():
                best = np.flatnonzero(ok)[np.argmin(np.abs(dets[ok, 2:6] - row[2:6]).max(axis=1))]
                free[best] = False
            else:
                drift.append(_drifted(image, i, row, dets, free))
        cut = rows[-1][1] if len(rows) >= k else min_score
        for row in dets[free]:
            if row[1] >= cut + score_tol:
                drift.append(
                    f"{image}: new detection (class {int(row[0])}, score {row[1]:.4f}, box "
                    f"{_box_text(row)}) that the fingerprint does not have"
                )
    return drift, checked


# ---------------------------------------------------------------- a zoo entry


def _config_path(folder: str, entry) -> str:
    """The resolved config inside a published tarball, else the entry's repo config."""
    inside = os.path.join(folder, "config.yml")
    if os.path.isfile(inside):
        return inside
    if entry.config:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for base in (root, os.getcwd()):
            path = os.path.join(base, entry.config)
            if os.path.isfile(path):
                return path
        raise FingerprintError(
            f"config {entry.config} of {entry.name} not found (run from the repository root)"
        )
    raise FingerprintError(f"{entry.name}: no config to run the weights with")


def _meta_fingerprint(folder: str) -> dict | None:
    path = os.path.join(folder, "meta.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("fingerprint")
    except (OSError, ValueError, AttributeError) as e:
        raise FingerprintError(f"{path}: unreadable ({e})") from None


def verify_entry(
    name: str,
    index=None,
    root: str | None = None,
    score_tol: float = SCORE_TOL,
    box_tol: float = BOX_TOL,
    progress: bool = True,
) -> tuple[list[str], int]:
    """Fetch zoo entry ``name``, run it on the samples, compare with its fingerprint (the
    index's, else the one in its tarball's meta.json). Returns :func:`compare`'s result."""
    import ppdet
    from ppdet.zoo.fetch import fetch
    from ppdet.zoo.index import ZooIndex, load_index
    from ppdet.zoo.weights import load_weights

    zoo = index if isinstance(index, ZooIndex) else load_index(index)
    entry = zoo.require(name)
    path = fetch(name, root=root, progress=progress, index=zoo)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    expected = entry.fingerprint or _meta_fingerprint(folder)
    if not expected:
        raise FingerprintError(
            f"{name} carries no behaviour fingerprint (neither in the index nor in its meta.json); "
            "tools/publish_model.py records one"
        )
    cfg = ppdet.load_config(_config_path(folder, entry))
    model = ppdet.build_model(cfg)
    load_weights(model, path, strict=True, index=zoo)
    return compare(expected, run_samples(cfg, model), score_tol, box_tol)
