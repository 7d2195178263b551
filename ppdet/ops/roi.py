"""RoI feature extraction: thin wrappers over Paddle's ``roi_align`` and
``distribute_fpn_proposals`` kernels, with the shapes spelled out.

Boxes are x1y1x2y2 input-image pixels without the "+1" convention (``pixel_offset`` false);
a batch of RoIs is one [R, 4] tensor plus ``rois_num`` [B] int32 (RoIs of image b are the
``rois_num[b]`` rows after those of images 0..b-1).
"""

from __future__ import annotations

import paddle
from paddle.vision import ops as vops

__all__ = ["distribute_fpn_proposals", "roi_align"]


def roi_align(
    feat: paddle.Tensor,
    rois: paddle.Tensor,
    rois_num: paddle.Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> paddle.Tensor:
    """Bilinear RoI pooling (Mask R-CNN's RoIAlign).

    feat: [B, C, H, W] one feature map of stride 1 / spatial_scale.
    rois: [R, 4] x1y1x2y2 input pixels; rois_num: [B] int32.
    sampling_ratio: sample points per bin side, <= 0 adaptive (ceil(bin size)).
    aligned: shift the boxes by -0.5 pixel (pixel centres at half-integers), as 2.x configs do.
    Returns [R, C, output_size, output_size]; R = 0 gives an empty [0, C, s, s] tensor.
    """
    kw = dict(
        spatial_scale=float(spatial_scale),
        sampling_ratio=int(sampling_ratio),
        aligned=bool(aligned),
    )
    rois_num = rois_num.astype("int32")
    if not paddle.in_dynamic_mode():
        # A static graph: Paddle 3.1's kernel gives a 0-d result for an empty RoI list coming
        # from distribute_fpn_proposals (an FPN level without RoIs), so one dummy RoI (of the
        # last image) is appended and its row dropped.
        batch = paddle.shape(rois_num)[0]
        last = (paddle.arange(batch) == batch - 1).astype("int32")  # [B]
        padded = paddle.concat([rois, paddle.zeros([1, 4], rois.dtype)])
        out = vops.roi_align(feat, padded, rois_num + last, output_size, **kw)[:-1]
    elif rois.shape[0] == 0:
        out = paddle.zeros([0, feat.shape[1], output_size, output_size], feat.dtype)
    else:
        out = vops.roi_align(feat, rois, rois_num, output_size, **kw)
    return out


def distribute_fpn_proposals(
    rois: paddle.Tensor,
    rois_num: paddle.Tensor,
    min_level: int,
    max_level: int,
    refer_level: int = 4,
    refer_scale: int = 224,
) -> tuple[list[paddle.Tensor], paddle.Tensor, list[paddle.Tensor]]:
    """Assign each RoI to a pyramid level (FPN paper, eq. 1).

    A box of size sqrt(w h) goes to level floor(refer_level + log2(sqrt(w h) / refer_scale)),
    clipped to [min_level, max_level] (levels are log2 of strides: P2 = 2 ... P5 = 5).
    rois: [R, 4] x1y1x2y2 pixels; rois_num: [B] int32.
    Returns (rois of each level [R_l, 4] (image order kept), restore_index [R, 1] int32 such
    that ``concat(level results)[restore_index[:, 0]]`` is back in the input order, rois_num
    of each level [B] int32).
    """
    multi_rois, restore, nums = vops.distribute_fpn_proposals(
        rois,
        min_level,
        max_level,
        refer_level,
        refer_scale,
        pixel_offset=False,
        rois_num=rois_num.astype("int32"),
    )
    return list(multi_rois), restore, list(nums)
