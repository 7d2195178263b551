"""Fluid-era re-computation of the R-CNN stages from our model's own tensors (diagnosis for
``bench/compare_legacy.py``).

Our model runs with the converted v0.1 weights; forward hooks take its raw RPN outputs and
the feature maps its box head sees. The two stages are then recomputed the way PaddleDetection
v0.1 on fluid 1.8 computes them, with Paddle's legacy kernels where they still exist:

- stage 1 (``replay_rpn``): fluid ``anchor_generator`` anchors (numpy, ``fluid_anchors``:
  ratio-major order, rounded base sizes, centre ``offset * (stride - 1)``, half extents
  ``(size - 1) / 2``), sigmoid objectness, ``generate_proposals(pixel_offset=True)`` clipped to
  the *padded* input size ``im_info[:2]``, and ``collect_fpn_proposals`` (the best
  ``post_nms_top_n`` over the levels by score);
- stage 2 (``replay_box_head``), fed v0.1's own proposals: ``distribute_fpn_proposals`` with
  the +1 area (``pixel_offset=True``), ``roi_align(aligned=False)``, our head layers, softmax,
  ``box_coder`` ``decode_center_size`` with ``box_normalized=False`` (+1 widths, no dw/dh clamp)
  against the proposals divided by the scale (original pixels), ``box_clip`` to
  ``(h0 - 1, w0 - 1)``, ``multiclass_nms(normalized=False)``.

What each replay gets right or wrong, next to what our model gives, is the specification of
the fluid-era behaviour the model still lacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import _C_ops
from paddle.vision import ops as vops

from ppdet.zoo.legacy_rules import RPN_C4_PERM

__all__ = ["FLUID", "fluid_anchors", "replay_box_head", "replay_rpn", "rpn_hooks"]


def fluid_anchors(
    height: int,
    width: int,
    sizes: Sequence[float],
    ratios: Sequence[float],
    stride: float,
    offset: float = 0.5,
) -> np.ndarray:
    """fluid ``anchor_generator``: [H, W, A, 4] x1y1x2y2 input pixels, A = len(ratios) *
    len(sizes), anchor index ratio_i * len(sizes) + size_i.

    Base width round(sqrt(stride^2 / ratio)), height round(base width * ratio), scaled by
    size / stride; centre (x * stride + offset * (stride - 1)); corners centre -+ (w - 1) / 2.
    """
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")  # [H, W]
    xc = xs * stride + offset * (stride - 1)
    yc = ys * stride + offset * (stride - 1)
    half = []
    for r in ratios:
        for s in sizes:
            base_w = np.round(np.sqrt(stride * stride / r))
            base_h = np.round(base_w * r)
            w, h = s / stride * base_w, s / stride * base_h
            half.append([-(w - 1) / 2, -(h - 1) / 2, (w - 1) / 2, (h - 1) / 2])
    centre = np.stack([xc, yc, xc, yc], -1)[:, :, None, :]  # [H, W, 1, 4]
    return (centre + np.asarray(half)[None, None]).astype(np.float32)  # [H, W, A, 4]


def rpn_hooks(model) -> tuple[dict, list]:
    """Post hooks on the layers named ``*rpn_rois_score`` / ``*rpn_rois_delta`` (one call per
    level) and a pre hook on ``BBoxHead`` (its feature maps): ({"score", "delta", "box_in"},
    handles)."""
    seen: dict = {"score": [], "delta": []}
    handles = []
    for name, layer in model.named_sublayers():
        if name.endswith("rpn_rois_score"):
            handles.append(
                layer.register_forward_post_hook(lambda _l, _i, o: seen["score"].append(o))
            )
        elif name.endswith("rpn_rois_delta"):
            handles.append(
                layer.register_forward_post_hook(lambda _l, _i, o: seen["delta"].append(o))
            )
        elif type(layer).__name__ == "BBoxHead":
            handles.append(
                layer.register_forward_pre_hook(lambda _l, i: seen.setdefault("box_in", i))
            )
    return seen, handles


def replay_rpn(
    scores: Sequence[paddle.Tensor],
    deltas: Sequence[paddle.Tensor],
    im_info: np.ndarray,
    fpn: bool,
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float = 0.7,
    min_size: float = 0.0,
    clip_to: np.ndarray | None = None,
) -> np.ndarray:
    """v0.1's proposals from our RPN outputs: [R, 4] input pixels, sorted by score.

    scores[i] [1, A, H, W] logits and deltas[i] [1, 4A, H, W] in our (2.x) anchor order; C4
    outputs are put back in fluid's ratio-major order (``RPN_C4_PERM``). FPN levels P2..P6 have
    one size 32 * 2**i and stride 2**(i + 2); C4 sizes 32..512 at stride 16. ``clip_to``
    (h, w) replaces the padded ``im_info[:2]`` as the clip window (to measure its effect).
    """
    window = np.asarray(im_info[:2] if clip_to is None else clip_to, np.float32)[None]  # [1, 2]
    boxes, probs = [], []
    for level, (score, delta) in enumerate(zip(scores, deltas, strict=True)):
        s, d = score.numpy(), delta.numpy()
        h, w = s.shape[2:]
        if fpn:
            stride, sizes = 2.0 ** (level + 2), [32.0 * 2**level]
        else:
            stride, sizes = 16.0, [32.0, 64.0, 128.0, 256.0, 512.0]
            s_f, d_f = np.empty_like(s), np.empty_like(d)
            for k, legacy in enumerate(RPN_C4_PERM):  # our channel k holds legacy channel `legacy`
                s_f[:, legacy] = s[:, k]
                d_f[:, 4 * legacy : 4 * legacy + 4] = d[:, 4 * k : 4 * k + 4]
            s, d = s_f, d_f
        anchors = fluid_anchors(h, w, sizes, [0.5, 1.0, 2.0], stride)  # [H, W, A, 4]
        rois, prob, _ = vops.generate_proposals(
            F.sigmoid(paddle.to_tensor(s)),
            paddle.to_tensor(d),
            paddle.to_tensor(window),
            paddle.to_tensor(anchors),
            paddle.ones(anchors.shape, "float32"),
            pre_nms_top_n=pre_nms_top_n,
            post_nms_top_n=post_nms_top_n,
            nms_thresh=nms_thresh,
            min_size=min_size,
            eta=1.0,
            pixel_offset=True,
            return_rois_num=True,
        )
        boxes.append(rois.numpy())
        probs.append(prob.numpy().reshape(-1))
    boxes_all, probs_all = np.concatenate(boxes), np.concatenate(probs)
    order = np.argsort(-probs_all, kind="stable")[:post_nms_top_n]
    return boxes_all[order]


FLUID = {
    "roi_align_aligned": False,
    "distribute_fpn_pixel_offset": True,
    "box_coder_plus_one": True,
    "decode_in_original_pixels": True,
    "clip_plus_one": True,
    "nms_normalized": False,
}


def _pooled(
    feats: Sequence[paddle.Tensor], rois: np.ndarray, fpn: bool, resolution: int, how: dict
) -> paddle.Tensor:
    """RoIAlign features [R, C, res, res] of v0.1: aligned=False; FPN levels by
    ``distribute_fpn_proposals(pixel_offset=True)`` over P2-P5, sampling ratio 2; C4 sampling
    ratio 0 on the stride-16 map."""
    boxes = paddle.to_tensor(rois.astype(np.float32))
    num = paddle.to_tensor([len(rois)], "int32")
    aligned = how["roi_align_aligned"]
    if not fpn:
        return vops.roi_align(feats[0], boxes, num, resolution, 1 / 16.0, 0, aligned=aligned)
    multi, restore, nums = vops.distribute_fpn_proposals(
        boxes, 2, 5, 4, 224, pixel_offset=how["distribute_fpn_pixel_offset"], rois_num=num
    )
    out = []
    for level, (level_rois, level_num) in enumerate(zip(multi, nums)):
        if level_rois.shape[0]:
            scale = 1 / 2.0 ** (level + 2)
            out.append(
                vops.roi_align(
                    feats[level], level_rois, level_num, resolution, scale, 2, aligned=aligned
                )
            )
    return paddle.gather(paddle.concat(out), restore.flatten())


def _decode_2x(deltas: paddle.Tensor, boxes: paddle.Tensor) -> paddle.Tensor:
    """2.x decode (no +1, dw/dh clamped at log(1000/16)), weights 10, 10, 5, 5:
    deltas [R, C, 4], boxes [R, 4] -> [R, C, 4]."""
    w = (boxes[:, 2] - boxes[:, 0]).unsqueeze(1)  # [R, 1]
    h = (boxes[:, 3] - boxes[:, 1]).unsqueeze(1)
    cx, cy = boxes[:, 0].unsqueeze(1) + 0.5 * w, boxes[:, 1].unsqueeze(1) + 0.5 * h
    clamp = float(np.log(1000.0 / 16))
    dx, dy = deltas[..., 0] / 10, deltas[..., 1] / 10
    dw = paddle.clip(deltas[..., 2] / 5, max=clamp)
    dh = paddle.clip(deltas[..., 3] / 5, max=clamp)
    px, py, pw, ph = cx + dx * w, cy + dy * h, w * paddle.exp(dw), h * paddle.exp(dh)
    return paddle.stack([px - pw / 2, py - ph / 2, px + pw / 2, py + ph / 2], -1)


def replay_box_head(
    bbox_head,
    feats: Sequence[paddle.Tensor],
    rois: np.ndarray,
    scale: float,
    original: tuple[float, float],
    fpn: bool,
    nms: dict,
    **changes: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """v0.1's second stage on proposals ``rois`` [R, 4] (input pixels) with our head layers.

    Returns (boxes [R, C, 4] original pixels clipped to (w0 - 1, h0 - 1), scores [R, C]
    foreground softmax, detections [K, 6] rows (label 0-based, score, x1, y1, x2, y2)).
    ``nms``: score_threshold, nms_threshold, keep_top_k, nms_top_k. ``changes``: any of
    ``FLUID``'s keys set to the 2.x value, to measure what each behaviour is worth.
    """
    how = {**FLUID, **changes}
    x = bbox_head.head(_pooled(feats, rois, fpn, 7 if fpn else 14, how))
    if getattr(bbox_head, "with_pool", False):
        x = F.adaptive_avg_pool2d(x, 1).flatten(start_axis=1)  # [R, F]
    probs = F.softmax(bbox_head.bbox_score(x), axis=-1)[:, :-1]  # [R, C], background was last
    num_classes = probs.shape[1]
    deltas = bbox_head.bbox_delta(x).reshape([-1, num_classes, 4])  # [R, C, 4]
    space = scale if how["decode_in_original_pixels"] else 1.0
    prior = paddle.to_tensor((rois / space).astype(np.float32))  # [R, 4]
    if how["box_coder_plus_one"]:
        boxes = vops.box_coder(
            prior, [0.1, 0.1, 0.2, 0.2], deltas, "decode_center_size", False, axis=1
        )  # [R, C, 4]
    else:
        boxes = _decode_2x(deltas, prior)
    boxes = boxes * (space / scale)  # original pixels
    h0, w0 = original
    one = 1.0 if how["clip_plus_one"] else 0.0
    limit = paddle.to_tensor([w0 - one, h0 - one, w0 - one, h0 - one], "float32")
    boxes = paddle.minimum(paddle.maximum(boxes, paddle.zeros([4])), limit)
    det, _, _ = _C_ops.multiclass_nms3(
        boxes,
        probs,
        paddle.to_tensor([len(rois)], "int32"),
        float(nms["score_threshold"]),
        int(nms.get("nms_top_k", -1)),
        int(nms["keep_top_k"]),
        float(nms["nms_threshold"]),
        bool(how["nms_normalized"]),  # False: IoU with +1 widths (v0.1's MultiClassNMS)
        1.0,
        -1,
    )
    return boxes.numpy(), probs.numpy(), det.numpy().reshape(-1, 6)
