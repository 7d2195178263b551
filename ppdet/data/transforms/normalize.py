"""Turn the decoded image into the network input: normalise values, then channel-first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ppdet.config.registry import register

from .compose import BaseOperator


@register("transform")
class NormalizeImage(BaseOperator):
    """Normalise pixel values: ``x / 255`` (if ``is_scale``), then ``(x - mean) / std``.

    Args:
        mean, std: per channel (RGB), in the units after scaling.
        is_scale: divide by 255 first.
        norm_type: "mean_std" (subtract mean, divide by std) or "none" (scaling only).

    Requires: ``image`` [H, W, 3]. Modifies: ``image`` (float32).
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        is_scale: bool = True,
        norm_type: str = "mean_std",
    ) -> None:
        if norm_type not in ("mean_std", "none"):
            raise ValueError(f"norm_type must be 'mean_std' or 'none', got {norm_type!r}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each, std > 0; got {mean!r}, {std!r}")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.is_scale = is_scale
        self.norm_type = norm_type

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].astype(np.float32)
        if self.is_scale:
            image *= 1.0 / 255.0
        if self.norm_type == "mean_std":
            image -= np.array(self.mean, np.float32)
            image /= np.array(self.std, np.float32)
        sample["image"] = image
        return sample


@register("transform")
class Permute(BaseOperator):
    """HWC -> CHW. Requires: ``image`` [H, W, C]. Modifies: ``image`` [C, H, W] (contiguous).

    Args:
        to_bgr: also reverse the channel order (RGB -> BGR), as PaddleDetection v0.1's SSD
            input did; 2.x configs never set it.
    """

    def __init__(self, to_bgr: bool = False) -> None:
        self.to_bgr = bool(to_bgr)

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        if self.to_bgr:
            image = image[:, :, ::-1]  # RGB -> BGR
        sample["image"] = np.ascontiguousarray(image.transpose(2, 0, 1))  # HWC -> CHW
        return sample
