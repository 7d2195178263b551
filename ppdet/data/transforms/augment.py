"""Training augmentations on HWC images: colour distortion, expand, SSD-style crop, flip, mixup.

All randomness comes from ``np.random`` (the loader seeds it per worker). Geometric operators
move every box, and every ``gt_poly`` polygon, by exactly the pixel shift applied to the image
(coordinates as in decode_resize.py: continuous pixels, x1 y1 x2 y2, no +1).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ppdet.config.registry import register

from .compose import BaseOperator
from .decode_resize import is_chw
from .gt_fields import GT_FIELDS, POLY_KEY, clip_polygon, map_polys, num_gt, select_gt


def _require_hwc(image: np.ndarray, op: str) -> None:
    if image.ndim != 3 or is_chw(image):
        raise ValueError(f"{op} needs an HWC image [H, W, 3]; put it before Permute")


def _set_shape(sample: dict, image: np.ndarray) -> None:
    sample["image"] = image
    sample["im_shape"] = np.array(image.shape[:2], np.float32)


def _uniform_param(spec: Sequence[float], name: str) -> tuple[float, float, float]:
    if len(spec) != 3:
        raise ValueError(f"{name} must be [low, high, prob], got {spec!r}")
    low, high, prob = (float(v) for v in spec)
    return low, high, prob


@register("transform")
class RandomDistort(BaseOperator):
    """Random photometric distortion: brightness, contrast, saturation, hue.

    Args:
        hue: [low, high, prob], shift in degrees (0-360 colour wheel).
        saturation, contrast, brightness: [low, high, prob], multiplicative factors.
        random_apply: apply the four in random order (at most ``count`` of them); otherwise
            brightness first, then contrast, saturation, hue or (with probability 0.5)
            saturation, hue, contrast, as PaddleDetection does. Each still fires with its prob.
        count: how many of the four may be applied when ``random_apply``.
        random_channel: also shuffle the RGB channels with probability 0.5.

    Requires: ``image`` [H, W, 3] with values in 0-255. Modifies: ``image`` (same dtype, clipped).
    """

    def __init__(
        self,
        hue: Sequence[float] = (-18, 18, 0.5),
        saturation: Sequence[float] = (0.5, 1.5, 0.5),
        contrast: Sequence[float] = (0.5, 1.5, 0.5),
        brightness: Sequence[float] = (0.5, 1.5, 0.5),
        random_apply: bool = True,
        count: int = 4,
        random_channel: bool = False,
    ) -> None:
        self.hue = _uniform_param(hue, "hue")
        self.saturation = _uniform_param(saturation, "saturation")
        self.contrast = _uniform_param(contrast, "contrast")
        self.brightness = _uniform_param(brightness, "brightness")
        self.random_apply = random_apply
        self.count = count
        self.random_channel = random_channel

    @staticmethod
    def _draw(spec: tuple[float, float, float]) -> float | None:
        low, high, prob = spec
        return np.random.uniform(low, high) if np.random.uniform() < prob else None

    def _apply(self, which: int, img: np.ndarray) -> np.ndarray:
        spec = (self.brightness, self.contrast, self.saturation, self.hue)[which]
        delta = self._draw(spec)
        if delta is None:
            return img
        if which == 0:  # brightness
            return img * delta
        if which == 1:  # contrast, around the mean grey level
            mean = float(img.mean())
            return (img - mean) * delta + mean
        if which == 2:  # saturation, around each pixel's grey value
            grey = img @ np.array([0.299, 0.587, 0.114], np.float32)  # [H, W]
            return (img - grey[..., None]) * delta + grey[..., None]
        hsv = cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees
        hsv[..., 0] = (hsv[..., 0] + delta) % 360.0
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        _require_hwc(image, "RandomDistort")
        img = image.astype(np.float32)
        if self.random_apply:
            order = np.random.permutation(4)[: self.count]
        else:  # contrast before or after saturation and hue, at random
            order = (0, 1, 2, 3) if np.random.randint(0, 2) else (0, 2, 3, 1)
        for which in order:
            img = np.clip(self._apply(int(which), img), 0, 255).astype(np.float32)
        if self.random_channel and np.random.uniform() < 0.5:
            img = img[..., np.random.permutation(3)]
        if image.dtype == np.uint8:
            img = np.round(img).astype(np.uint8)
        sample["image"] = np.ascontiguousarray(img)
        return sample


@register("transform")
class RandomExpand(BaseOperator):
    """Place the image at a random spot of a larger canvas filled with ``fill_value``.

    Args:
        ratio: the canvas side is ``s * side`` with s uniform in [1, ratio].
        prob: probability of expanding.
        fill_value: canvas colour, one value or one per channel (RGB, 0-255).

    Requires: ``image`` [H, W, 3]. Modifies: ``image``, ``im_shape``, ``gt_bbox`` and
    ``gt_poly`` (shifted by the paste offset).
    """

    def __init__(
        self,
        ratio: float = 4.0,
        prob: float = 0.5,
        fill_value: float | Sequence[float] = (127.5, 127.5, 127.5),
    ) -> None:
        if ratio < 1:
            raise ValueError(f"ratio must be >= 1, got {ratio}")
        self.ratio = float(ratio)
        self.prob = float(prob)
        fill = [fill_value] * 3 if isinstance(fill_value, (int, float)) else list(fill_value)
        if len(fill) != 3:
            raise ValueError(f"fill_value needs 1 or 3 values, got {fill_value!r}")
        self.fill_value = [float(v) for v in fill]

    def __call__(self, sample: dict) -> dict:
        if self.ratio < 1.01 or np.random.uniform() >= self.prob:
            return sample
        image = sample["image"]
        _require_hwc(image, "RandomExpand")
        h, w, c = image.shape
        scale = np.random.uniform(1.0, self.ratio)
        out_h, out_w = int(h * scale), int(w * scale)
        y0 = np.random.randint(0, out_h - h + 1)
        x0 = np.random.randint(0, out_w - w + 1)
        fill = np.array(self.fill_value[:c], np.float32)
        if np.issubdtype(image.dtype, np.integer):
            fill = np.round(fill)
        canvas = np.empty((out_h, out_w, c), image.dtype)
        canvas[:] = fill.astype(image.dtype)
        canvas[y0 : y0 + h, x0 : x0 + w] = image
        _set_shape(sample, canvas)
        if "gt_bbox" in sample:
            sample["gt_bbox"] = sample["gt_bbox"] + np.array([x0, y0, x0, y0], np.float32)
        map_polys(sample, lambda xs, ys: (xs + x0, ys + y0))
        return sample


def _iou_with(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with each of ``boxes`` [M, 4] -> [M]."""
    lt = np.maximum(box[:2], boxes[:, :2])  # [M, 2]
    rb = np.minimum(box[2:], boxes[:, 2:])  # [M, 2]
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-10)


@register("transform")
class RandomCrop(BaseOperator):
    """SSD-style crop whose IoU with the boxes passes a randomly chosen threshold.

    One threshold is drawn from ``thresholds`` (plus "no crop" if ``allow_no_crop``); up to
    ``num_attempts`` crops are sampled with side scale s in ``scaling`` and aspect ratio in
    ``aspect_ratio`` (limited to [s^2, 1/s^2] so the crop fits). A crop is accepted when the max
    IoU with the gt boxes (the min, with ``cover_all_box``) reaches the threshold and it holds at
    least one box centre; boxes whose centre lies outside are dropped, the rest are clipped.
    If no threshold yields a crop the sample is unchanged; samples without boxes are unchanged.
    ``gt_poly`` polygons are clipped to the crop window; an object none of whose polygons
    keeps any area inside it is dropped (box too).

    Requires: ``image`` [H, W, 3], ``gt_bbox``. Modifies: ``image``, ``im_shape`` and all gt
    fields (``gt_bbox``, ``gt_class``, ``gt_score``, ``is_crowd``, ``difficult``, ``gt_poly``).
    """

    def __init__(
        self,
        aspect_ratio: Sequence[float] = (0.5, 2.0),
        thresholds: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
        scaling: Sequence[float] = (0.3, 1.0),
        num_attempts: int = 50,
        allow_no_crop: bool = True,
        cover_all_box: bool = False,
    ) -> None:
        if len(aspect_ratio) != 2 or len(scaling) != 2:
            raise ValueError("aspect_ratio and scaling must be [low, high]")
        self.aspect_ratio = [float(a) for a in aspect_ratio]
        self.thresholds = [float(t) for t in thresholds]
        self.scaling = [float(s) for s in scaling]
        self.num_attempts = num_attempts
        self.allow_no_crop = allow_no_crop
        self.cover_all_box = cover_all_box

    def _sample_crop(self, h: int, w: int) -> np.ndarray | None:
        scale = np.random.uniform(*self.scaling)
        low = max(self.aspect_ratio[0], scale**2)
        high = min(self.aspect_ratio[1], scale**-2)
        if low > high:
            return None
        ratio = np.sqrt(np.random.uniform(low, high))
        crop_h, crop_w = int(h * scale / ratio), int(w * scale * ratio)
        if crop_h < 1 or crop_w < 1:
            return None
        y0 = np.random.randint(0, h - crop_h + 1)
        x0 = np.random.randint(0, w - crop_w + 1)
        return np.array([x0, y0, x0 + crop_w, y0 + crop_h], np.float32)

    def __call__(self, sample: dict) -> dict:
        if num_gt(sample) == 0:
            return sample
        image = sample["image"]
        _require_hwc(image, "RandomCrop")
        h, w = image.shape[:2]
        boxes = sample["gt_bbox"]
        choices: list[float | None] = list(self.thresholds)
        if self.allow_no_crop:
            choices.append(None)
        for i in np.random.permutation(len(choices)):
            thresh = choices[i]
            if thresh is None:
                return sample
            for _ in range(self.num_attempts):
                crop = self._sample_crop(h, w)
                if crop is None:
                    continue
                iou = _iou_with(crop, boxes)
                if (iou.min() if self.cover_all_box else iou.max()) < thresh:
                    continue
                centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # [M, 2]
                keep = np.all((centres > crop[:2]) & (centres < crop[2:]), axis=1)
                if keep.any():
                    return self._crop(sample, crop.astype(int), keep)
        return sample

    @staticmethod
    def _crop(sample: dict, crop: np.ndarray, keep: np.ndarray) -> dict:
        x0, y0, x1, y1 = (int(v) for v in crop)
        _set_shape(sample, sample["image"][y0:y1, x0:x1])
        select_gt(sample, keep)
        before = sample.get(POLY_KEY, [])
        shifted = sample["gt_bbox"] - np.array([x0, y0, x0, y0], np.float32)
        limit = np.array([x1 - x0, y1 - y0] * 2, np.float32)
        sample["gt_bbox"] = np.clip(shifted, 0, limit).astype(np.float32)
        if POLY_KEY in sample:
            w, h = x1 - x0, y1 - y0
            clipped = []
            for obj in sample[POLY_KEY]:
                polys = []
                for poly in obj:
                    poly = np.asarray(poly, np.float32).reshape(-1).copy()
                    poly[0::2] -= x0
                    poly[1::2] -= y0
                    part = clip_polygon(poly, 0, 0, w, h)
                    if len(part):
                        polys.append(part)
                clipped.append(polys)
            sample[POLY_KEY] = clipped
            # an object that had polygons but has none left inside the crop is dropped
            gone = np.array([len(o) == 0 and len(p) > 0 for o, p in zip(clipped, before)], bool)
            if gone.any():
                select_gt(sample, ~gone)
        return sample


@register("transform")
class RandomFlip(BaseOperator):
    """Horizontal flip with probability ``prob``; a box becomes (w - x2, y1, w - x1, y2), a
    polygon vertex (x, y) becomes (w - x, y).

    Requires: ``image`` [H, W, 3]. Modifies: ``image``, ``gt_bbox`` and ``gt_poly`` (if present).
    """

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = float(prob)

    def __call__(self, sample: dict) -> dict:
        if np.random.uniform() >= self.prob:
            return sample
        image = sample["image"]
        _require_hwc(image, "RandomFlip")
        w = image.shape[1]
        sample["image"] = np.ascontiguousarray(image[:, ::-1])
        if "gt_bbox" in sample:
            boxes = sample["gt_bbox"]
            flipped = boxes.copy()
            flipped[:, 0] = w - boxes[:, 2]
            flipped[:, 2] = w - boxes[:, 0]
            sample["gt_bbox"] = flipped
        map_polys(sample, lambda xs, ys: (w - xs, ys))
        return sample


@register("transform")
class Mixup(BaseOperator):
    """Blend the sample with ``sample["mixup"]`` (attached by the dataset while mixup is on).

    The weight ``f`` of the sample is drawn from Beta(alpha, beta) (the partner gets 1 - f);
    images are blended on a canvas of the larger height and width (both placed at the top-left)
    and the boxes of both are kept, with ``gt_score`` = f for the sample's boxes and 1 - f for
    the partner's (``gt_poly`` lists are joined the same way, unmoved). Without a partner only
    ``gt_score`` (ones) is added.

    Requires: ``image`` [H, W, 3], gt fields; ``mixup`` (a decoded sample) optional.
    Modifies: ``image`` (float32 when blended), ``im_shape``, ``h``, ``w``, gt fields.
    Adds: ``gt_score`` float32 [M, 1]. Removes: ``mixup``.
    """

    def __init__(self, alpha: float = 1.5, beta: float = 1.5) -> None:
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"alpha and beta must be > 0, got {alpha}, {beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    @staticmethod
    def _with_score(sample: dict, weight: float = 1.0) -> dict:
        if "gt_bbox" in sample:
            score = sample.get("gt_score", np.ones((len(sample["gt_bbox"]), 1), np.float32))
            sample["gt_score"] = (score * weight).astype(np.float32)
        return sample

    def __call__(self, sample: dict) -> dict:
        other = sample.pop("mixup", None)
        if other is None:
            return self._with_score(sample)
        factor = float(np.clip(np.random.beta(self.alpha, self.beta), 0.0, 1.0))
        if factor >= 1.0:
            return self._with_score(sample)
        if factor <= 0.0:
            return self._with_score(other)
        img1, img2 = sample["image"], other["image"]
        _require_hwc(img1, "Mixup")
        h = max(img1.shape[0], img2.shape[0])
        w = max(img1.shape[1], img2.shape[1])
        canvas = np.zeros((h, w, img1.shape[2]), np.float32)
        canvas[: img1.shape[0], : img1.shape[1]] += img1.astype(np.float32) * factor
        canvas[: img2.shape[0], : img2.shape[1]] += img2.astype(np.float32) * (1.0 - factor)
        self._with_score(sample, factor)
        self._with_score(other, 1.0 - factor)
        for key in GT_FIELDS:
            if key in sample and key in other:
                sample[key] = np.concatenate([sample[key], other[key]], axis=0)
        if POLY_KEY in sample and POLY_KEY in other:
            sample[POLY_KEY] = list(sample[POLY_KEY]) + list(other[POLY_KEY])
        _set_shape(sample, canvas)
        sample["h"], sample["w"] = h, w
        return sample
