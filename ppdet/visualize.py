"""Draw detections on images and write them as JSON (used by tools/infer.py).

Detections follow the model contract: ``bbox`` [N,6] rows of (class id, score, x1, y1, x2, y2)
in original-image pixels; instance models add ``mask``: binary masks [N, H, W] (uint8, original
image size) row-aligned with ``bbox``, drawn as a semi-transparent fill and written as COCO RLE.
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ppdet.atomic_io import atomic_write_text


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, saturated BGR colour for ``class_id``: hues spread by the golden ratio,
    brightness alternating with the class id's parity so near-equal hues still differ."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95 if class_id % 2 == 0 else 0.7)
    return int(b * 255), int(g * 255), int(r * 255)


def _class_name(class_id: int, label_list: Sequence[str] | None) -> str:
    if label_list is not None and 0 <= class_id < len(label_list):
        return str(label_list[class_id])
    return str(class_id)


MASK_ALPHA = 0.45  # opacity of the mask fill


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """A binary mask [H, W] as COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def draw_detections(
    image: np.ndarray,
    bbox: np.ndarray,
    label_list: Sequence[str] | None = None,
    threshold: float = 0.5,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``image`` (HxWx3 BGR uint8) with boxes scoring >= ``threshold`` drawn.

    Each box gets its class colour and a filled label "name score" above it (inside the
    box when there is no room above). Line width and font scale follow the image size.
    ``mask`` [N, H, W] (optional, binary, rows aligned with ``bbox``): each kept detection's
    mask is filled with its class colour at opacity ``MASK_ALPHA`` before the boxes are drawn.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    h, w = out.shape[:2]
    bbox = np.asarray(bbox, dtype=np.float32).reshape(-1, 6)  # [N, 6]
    if mask is not None:
        mask = np.asarray(mask).reshape(-1, h, w)  # [N, H, W]
        if len(mask) != len(bbox):
            raise ValueError(f"{len(mask)} masks for {len(bbox)} boxes")
        for i in np.argsort(bbox[:, 1]):
            cls, score = int(round(float(bbox[i, 0]))), float(bbox[i, 1])
            if score < threshold or cls < 0:
                continue
            region = mask[i] > 0
            colour = np.array(class_color(cls), np.float32)
            out[region] = np.round(out[region] * (1 - MASK_ALPHA) + colour * MASK_ALPHA).astype(
                np.uint8
            )
    thickness = max(1, round(min(h, w) / 320))
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = float(np.clip(min(h, w) / 900, 0.35, 1.2))
    font_thick = 1 if font_scale < 0.8 else 2
    # draw lowest scores first so the most confident labels end up on top
    for cls, score, x1, y1, x2, y2 in bbox[np.argsort(bbox[:, 1])].tolist():
        if score < threshold or cls < 0:
            continue
        cls = int(round(cls))
        color = class_color(cls)
        p1 = (int(round(np.clip(x1, 0, w - 1))), int(round(np.clip(y1, 0, h - 1))))
        p2 = (int(round(np.clip(x2, 0, w - 1))), int(round(np.clip(y2, 0, h - 1))))
        cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)

        text = f"{_class_name(cls, label_list)} {score:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, font, font_scale, font_thick)
        box_h = th + baseline + 2
        top = p1[1] - box_h if p1[1] - box_h >= 0 else p1[1]  # above the box, else inside
        left = min(p1[0], max(0, w - tw - 2))
        cv2.rectangle(out, (left, top), (left + tw + 2, top + box_h), color, cv2.FILLED)
        luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        cv2.putText(
            out,
            text,
            (left + 1, top + th + 1),
            font,
            font_scale,
            text_color,
            font_thick,
            cv2.LINE_AA,
        )
    return out


def detections_to_json(
    image: str,
    im_id: int,
    bbox: np.ndarray,
    label_list: Sequence[str] | None = None,
    threshold: float = 0.0,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """One image's entry: ``{"image", "im_id", "detections": [{class_id, category, score,
    bbox: [x1, y1, x2, y2]}]}`` for rows of ``bbox`` [n,6] scoring >= ``threshold``,
    highest score first. With ``mask`` [n, H, W] each detection also has ``segmentation``
    (COCO compressed RLE, ``{"size": [H, W], "counts": str}``)."""
    bbox = np.asarray(bbox, dtype=np.float32).reshape(-1, 6)  # [n, 6]
    if mask is not None:
        mask = np.asarray(mask)
        if len(mask) != len(bbox):
            raise ValueError(f"{image}: {len(mask)} masks for {len(bbox)} boxes")
    dets = []
    for i in np.argsort(-bbox[:, 1], kind="stable").tolist():
        cls, score, x1, y1, x2, y2 = bbox[i].tolist()
        if score < threshold or cls < 0:
            continue
        cls = int(round(cls))
        det = {
            "class_id": cls,
            "category": _class_name(cls, label_list),
            "score": round(score, 5),
            "bbox": [round(v, 2) for v in (x1, y1, x2, y2)],
        }
        if mask is not None:
            det["segmentation"] = mask_to_rle(mask[i])
        dets.append(det)
    return {"image": str(image), "im_id": int(im_id), "detections": dets}


def batch_to_json(
    images: Sequence[str],
    im_ids: Sequence[int] | np.ndarray,
    bbox: np.ndarray,
    bbox_num: np.ndarray,
    label_list: Sequence[str] | None = None,
    threshold: float = 0.0,
) -> list[dict[str, Any]]:
    """Entries for a batch: ``bbox`` [N,6] split per image by ``bbox_num`` [B]."""
    bbox = np.asarray(bbox, dtype=np.float32).reshape(-1, 6)  # [N, 6]
    counts = np.asarray(bbox_num, dtype=np.int64).reshape(-1)  # [B]
    ids = np.asarray(im_ids).reshape(-1)  # [B]
    if not len(images) == len(ids) == len(counts) or counts.sum() != len(bbox):
        raise ValueError(
            f"batch mismatch: {len(images)} images, {len(ids)} ids, bbox_num {counts.tolist()} "
            f"for {len(bbox)} boxes"
        )
    parts = np.split(bbox, np.cumsum(counts)[:-1])
    return [
        detections_to_json(path, int(i), part, label_list, threshold)
        for path, i, part in zip(images, ids.tolist(), parts)
    ]


def write_detections_json(
    path: str,
    results: Sequence[dict[str, Any]],
    label_list: Sequence[str] | None = None,
    threshold: float = 0.0,
) -> None:
    """Write the JSON list of per-image entries to ``path`` atomically.

    ``results`` holds either entries made by ``detections_to_json`` (written as they are) or
    the Predictor's raw results ``{"im_file", "im_id", "bbox" [n,6], "mask" [n,H,W]
    (optional)}`` (converted here with ``label_list`` and ``threshold``).
    """
    entries = [
        r
        if "detections" in r
        else detections_to_json(
            r["im_file"], r["im_id"], r["bbox"], label_list, threshold, r.get("mask")
        )
        for r in results
    ]
    atomic_write_text(path, json.dumps(entries, indent=1))


def read_detections_json(path: str) -> list[dict[str, Any]]:
    """The entries list written by ``write_detections_json``."""
    with open(path) as f:
        return json.load(f)
