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

import contextlib
from collections.abc import Iterator, Sequence

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

    Base width round(sqrt(stride^2 / ratio)), height round(base width * ratio) (C ``round``:
    22.5 -> 23, where numpy's rounds to even), scaled by
    size / stride; centre (x * stride + offset * (stride - 1)); corners centre -+ (w - 1) / 2.
    """
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")  # [H, W]
    xc = xs * stride + offset * (stride - 1)
    yc = ys * stride + offset * (stride - 1)
    half = []
    for r in ratios:
        for s in sizes:
            base_w = np.floor(np.sqrt(stride * stride / r) + 0.5)  # C round: halves away from 0
            base_h = np.floor(base_w * r + 0.5)
            w, h = s / stride * base_w, s / stride * base_h
            half.append([-(w - 1) / 2, -(h - 1) / 2, (w - 1) / 2, (h - 1) / 2])
    centre = np.stack([xc, yc, xc, yc], -1)[:, :, None, :]  # [H, W, 1, 4]
    return (centre + np.asarray(half)[None, None]).astype(np.float32)  # [H, W, A, 4]


def rpn_hooks(model) -> tuple[dict, list]:
    """Post hooks on the layers named ``*rpn_rois_score`` / ``*rpn_rois_delta`` (one call per
    level) and a pre hook on ``BBoxHead`` / ``CascadeHead`` (its feature maps): ({"score", "delta", "box_in"},
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
        elif type(layer).__name__ in ("BBoxHead", "CascadeHead"):
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


# ---------------------------------------------------------------- Cascade R-CNN

CASCADE_VARS = tuple((1 / w, 1 / w, 2 / w, 2 / w) for w in (10.0, 20.0, 30.0))  # v0.1 stages


def replay_cascade(
    bbox_head,
    feats: Sequence[paddle.Tensor],
    rois: np.ndarray,
    scale: float,
    original: tuple[float, float],
    nms: dict,
    clip_stages: np.ndarray | None = None,
    own_stage_scores: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """v0.1's Cascade R-CNN test path on proposals ``rois`` [R, 4] (input pixels) with our
    stage layers (``head(x, k)``, ``bbox_score[k]``, ``bbox_delta[k]``): stage k > 0 takes the
    previous stage's boxes decoded with +1 widths and the stage's variances, *not clipped*;
    the scores are the mean softmax of the three heads all run on the third stage's RoI
    features; the boxes are the third stage's RoIs / scale decoded by its deltas (+1,
    variances 1/30, 1/30, 2/30, 2/30), clipped to (w0 - 1, h0 - 1); NMS with +1 IoU.
    Returns (boxes [R, C, 4], scores [R, C], detections [K, 6]) as ``replay_box_head``.
    The 2.x ways, to measure them: ``clip_stages`` (h, w) clips each refined stage's boxes;
    ``own_stage_scores`` averages each head's softmax on its own stage's RoIs."""
    current = paddle.to_tensor(rois.astype(np.float32))
    deltas = None
    own = []
    for k in range(3):
        if k > 0:
            current = vops.box_coder(
                current,
                list(CASCADE_VARS[k - 1]),
                deltas.unsqueeze(1),
                "decode_center_size",
                False,
                axis=1,
            ).reshape([-1, 4])  # [R, 4] input pixels, not clipped
            if clip_stages is not None:
                h, w = (float(v) for v in clip_stages)
                limit = paddle.to_tensor([w, h, w, h], "float32")
                current = paddle.minimum(paddle.maximum(current, paddle.zeros([4])), limit)
        pooled = _pooled(feats, current.numpy(), True, 7, FLUID)
        x = bbox_head.head(pooled, k)
        deltas = bbox_head.bbox_delta[k](x)  # [R, 4]
        own.append(F.softmax(bbox_head.bbox_score[k](x), axis=-1))
    if own_stage_scores:
        probs = sum(own) / 3.0
    else:  # every head on the last stage's RoI features
        heads = [bbox_head.bbox_score[j](bbox_head.head(pooled, j)) for j in range(3)]
        probs = sum(F.softmax(h, axis=-1) for h in heads) / 3.0
    probs = probs[:, :-1]  # [R, C], background was last
    num_classes = probs.shape[1]
    target = deltas.unsqueeze(1).expand([-1, num_classes, 4])  # [R, C, 4]
    boxes = vops.box_coder(
        current / scale, list(CASCADE_VARS[2]), target, "decode_center_size", False, axis=1
    )
    h0, w0 = original
    limit = paddle.to_tensor([w0 - 1, h0 - 1, w0 - 1, h0 - 1], "float32")
    boxes = paddle.minimum(paddle.maximum(boxes, paddle.zeros([4])), limit)
    det, _, _ = _C_ops.multiclass_nms3(
        boxes,
        probs,
        paddle.to_tensor([len(rois)], "int32"),
        float(nms["score_threshold"]),
        int(nms.get("nms_top_k", -1)),
        int(nms["keep_top_k"]),
        float(nms["nms_threshold"]),
        False,
        1.0,
        -1,
    )
    return boxes.numpy(), probs.numpy(), det.numpy().reshape(-1, 6)


# ---------------------------------------------------------------- RetinaNet

RETINA_RATIOS = (1.0, 2.0, 0.5)  # v0.1's order


def retina_anchors(height: int, width: int, stride: int) -> np.ndarray:
    """v0.1 RetinaNet anchors of one level: [H * W * 9, 4] fluid anchors of sizes
    4 * stride * 2**(k / 3), ratios (1, 2, 0.5), index (y * W + x) * 9 + ratio_i * 3 + k."""
    sizes = [stride * 2.0 ** (k / 3.0) * 4 for k in range(3)]
    return fluid_anchors(height, width, sizes, RETINA_RATIOS, float(stride)).reshape(-1, 4)


def retina_level_in_v01_order(
    logits: paddle.Tensor, deltas: paddle.Tensor, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Our level outputs logits [1, 9C, H, W] / deltas [1, 36, H, W] (2.x anchor order) ->
    v0.1's ``retinanet_detection_output`` inputs: sigmoid scores [H W 9, C], deltas
    [H W 9, 4], anchors in v0.1's ratio-major order."""
    from ppdet.zoo.legacy_rules import RETINA_PERM

    h, w = logits.shape[2:]
    s = F.sigmoid(logits).numpy()[0].transpose(1, 2, 0).reshape(h * w, 9, num_classes)
    d = deltas.numpy()[0].transpose(1, 2, 0).reshape(h * w, 9, 4)
    s_v01, d_v01 = np.empty_like(s), np.empty_like(d)
    s_v01[:, list(RETINA_PERM)] = s  # our anchor k is legacy anchor RETINA_PERM[k]
    d_v01[:, list(RETINA_PERM)] = d
    return s_v01.reshape(-1, num_classes), d_v01.reshape(-1, 4)


def _nms_plus_one(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS by decreasing score (stable), IoU with +1 widths: kept indices."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area = np.where((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]), 0, area)
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.asarray(kept)
            iw = np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]) + 1
            ih = np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]) + 1
            inter = iw * ih
            disjoint = (iw <= 0) | (ih <= 0)
            iou = np.where(disjoint, 0, inter / (area[k] + area[i] - inter))
            if (iou > threshold).any():
                continue
        kept.append(int(i))
    return kept


def retinanet_detection_output(
    scores: Sequence[np.ndarray],
    deltas: Sequence[np.ndarray],
    anchors: Sequence[np.ndarray],
    im_info: np.ndarray,
    score_threshold: float = 0.05,
    nms_threshold: float = 0.5,
    nms_top_k: int = 1000,
    keep_top_k: int = 100,
) -> np.ndarray:
    """fluid's ``retinanet_detection_output`` for one image (numpy, float32).

    Per level: the (anchor, class) pairs with score > score_threshold (the last level: > 0),
    the best ``nms_top_k`` by score, decoded with +1 widths (x2 = cx + w / 2 - 1, no dw/dh
    clamp), divided by im_info[2] and clipped to [0, round(im_info[:2] / scale) - 1] (the
    *padded* size). Then per-class NMS with +1 IoU and the best ``keep_top_k`` overall.
    Returns [K, 6] rows (label 0-based, score, x1, y1, x2, y2) original pixels.
    """
    height, width, scale = (np.float32(v) for v in im_info[:3])
    limit_h, limit_w = np.float32(round(height / scale)) - 1, np.float32(round(width / scale)) - 1
    per_class: dict[int, list] = {}
    for level, (s, d, a) in enumerate(zip(scores, deltas, anchors, strict=True)):
        flat = s.reshape(-1).astype(np.float32)
        threshold = score_threshold if level < len(scores) - 1 else 0.0
        idx = np.nonzero(flat > threshold)[0]
        idx = idx[np.argsort(-flat[idx], kind="stable")][:nms_top_k]
        num_classes = s.shape[1]
        anchor, cls = idx // num_classes, idx % num_classes
        box, delta = a[anchor].astype(np.float32), d[anchor].astype(np.float32)
        aw, ah = box[:, 2] - box[:, 0] + 1, box[:, 3] - box[:, 1] + 1
        cx, cy = box[:, 0] + aw / 2, box[:, 1] + ah / 2
        px, py = delta[:, 0] * aw + cx, delta[:, 1] * ah + cy
        pw, ph = np.exp(delta[:, 2]) * aw, np.exp(delta[:, 3]) * ah
        out = np.stack([px - pw / 2, py - ph / 2, px + pw / 2 - 1, py + ph / 2 - 1], 1) / scale
        out[:, 0::2] = np.clip(out[:, 0::2], 0, limit_w)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, limit_h)
        for c, b, sc in zip(cls, out, flat[idx]):
            per_class.setdefault(int(c), []).append((*b, sc))
    rows = []
    for c in sorted(per_class):
        dets = np.asarray(per_class[c], np.float32)  # [n, 5]
        for i in _nms_plus_one(dets[:, :4], dets[:, 4], nms_threshold):
            rows.append((c, dets[i, 4], *dets[i, :4]))
    rows.sort(key=lambda r: -r[1])  # stable: ties keep class order
    return np.asarray(rows[:keep_top_k], np.float32).reshape(-1, 6)


# ---------------------------------------------------------------- Mask R-CNN


def replay_masks(
    model, feats: Sequence[paddle.Tensor], det: np.ndarray, scale: float, fpn: bool
) -> np.ndarray:
    """v0.1's mask branch on detections ``det`` [N, 6] (label 0-based, score, box original
    pixels) with our mask head layers: RoIs = boxes * scale (input pixels), v0.1's RoIAlign
    (``_pooled``, 14 x 14), C4: the box head's res5 first; -> [N, M, M] sigmoid of each
    detection's class."""
    rois = det[:, 2:] * scale
    x = _pooled(feats, rois, fpn, 14, FLUID)
    if getattr(model.mask_head, "share_bbox_feat", False):
        x = model.bbox_head.head(x)  # C4: res5 -> [N, 2048, 7, 7]
    classes = paddle.to_tensor(det[:, 0].astype("int64"))
    return F.sigmoid(model.mask_head.logits(x, classes)).numpy()


def paste_mask_v01(mask: np.ndarray, box: np.ndarray, height: int, width: int) -> np.ndarray:
    """v0.1's ``mask2out`` for one detection: the M x M mask with a 1-pixel zero border, the box
    expanded by (M + 2) / M around its centre and truncated to int, resized (cv2 bilinear) to
    (x2 - x1 + 1) x (y2 - y1 + 1), > 0.5, pasted inside the image -> [height, width] uint8."""
    import cv2

    m = mask.shape[0]
    s = (m + 2.0) / m
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2 * s, (y2 - y1) / 2 * s
    x1, y1, x2, y2 = (int(v) for v in (cx - hw, cy - hh, cx + hw, cy + hh))  # toward zero
    padded = np.zeros((m + 2, m + 2), np.float32)
    padded[1:-1, 1:-1] = mask
    w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    resized = (cv2.resize(padded, (w, h)) > 0.5).astype(np.uint8)
    out = np.zeros((height, width), np.uint8)
    c0, c1 = min(max(x1, 0), width), min(max(x2 + 1, 0), width)
    r0, r1 = min(max(y1, 0), height), min(max(y2 + 1, 0), height)
    out[r0:r1, c0:c1] = resized[r0 - y1 : r1 - y1, c0 - x1 : c1 - x1]
    return out


# ---------------------------------------------------------------- C4 -vd head


@contextlib.contextmanager
def res5_variant_d(bbox_head) -> Iterator[bool]:
    """For this block only, the C4 res5 head's first shortcut as v0.1's ResNetC5 variant d:
    2x2 average pool (stride 2, ceil mode) then the 1x1 conv at stride 1 (ours: the 1x1 conv at
    stride 2). Yields whether the head had such a shortcut."""
    short = None
    for name, layer in bbox_head.named_sublayers():
        if name.endswith("res5a.short") and hasattr(layer, "conv"):
            short = layer
    if short is None:
        yield False
        return
    forward, stride = short.forward, list(short.conv._stride)
    short.conv._stride = [1, 1]
    short.forward = lambda x: forward(F.avg_pool2d(x, 2, 2, ceil_mode=True))
    try:
        yield True
    finally:
        short.forward, short.conv._stride = forward, stride
