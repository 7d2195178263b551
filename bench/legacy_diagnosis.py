"""Where our model's numbers part from PaddleDetection v0.1's (``bench/compare_legacy.py``):
forward hooks that capture our intermediate tensors, their comparison with the oracle npz's,
and per-family diagnoses that recompute stages the fluid way (``legacy_replay``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from legacy_match import (
    MatchResult,
    compare_rois,
    diff_text,
    match,
    network_input,
    original_size,
    reference_detections,
    to_numpy,
)

__all__ = [
    "RcnnDiagnosis",
    "RetinaDiagnosis",
    "capture",
    "compare_intermediates",
    "run_model",
    "ssd_relu_extra_blocks",
]


@contextlib.contextmanager
def capture(model) -> Iterator[dict]:
    """Forward hooks that record intermediate tensors by the class of the layer.

    ``rpn``: RPNHead output (rois list, rois_num); ``rcnn_decode``: RCNNBox output (boxes
    [R, C, 4] input pixels, scores [R, C]); ``nms``: MultiClassNMS input (boxes [B, N, 4]
    original pixels, scores [B, C, N]); ``retina``: RetinaHead output (cls, reg per level).
    """
    seen: dict = {}
    handles = []

    def post(key):
        def hook(layer, inputs, outputs):
            seen.setdefault(key, outputs)

        return hook

    def pre(key):
        def hook(layer, inputs):
            seen.setdefault(key, inputs)

        return hook

    for _, layer in model.named_sublayers(include_self=True):
        kind = type(layer).__name__
        if kind == "RPNHead":
            handles.append(layer.register_forward_post_hook(post("rpn")))
        elif kind == "RCNNBox":
            handles.append(layer.register_forward_post_hook(post("rcnn_decode")))
        elif kind == "MultiClassNMS":
            handles.append(layer.register_forward_pre_hook(pre("nms")))
        elif kind == "RetinaHead":
            handles.append(layer.register_forward_post_hook(post("retina")))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def compare_intermediates(family: str, z, p: str, seen: dict, net: dict) -> dict[str, str]:
    """{tensor name: one-line comparison} for the npz's intermediates of photo ``p``."""
    out: dict[str, str] = {}
    keys = set(z.files)
    if family == "rcnn" and f"{p}/rois" in keys and "rpn" in seen:
        rois = (
            to_numpy(seen["rpn"][0][0])
            if isinstance(seen["rpn"][0], list)
            else to_numpy(seen["rpn"][0])
        )
        out["rois"] = compare_rois(z[f"{p}/rois"], rois)
        if "rcnn_decode" in seen and f"{p}/nms_in.scores" in keys:
            boxes, scores = (to_numpy(t) for t in seen["rcnn_decode"])
            ref_scores = z[f"{p}/nms_in.scores"]  # [R, C+1], background column 0
            ref_boxes = z[f"{p}/nms_in.bboxes"]  # [R, C+1, 4] original pixels
            s = float(net["scale_factor"][0, 0])
            if len(ref_scores) == len(scores):
                out["nms_in.scores"] = diff_text(ref_scores[:, 1:], scores)
                out["nms_in.bboxes"] = diff_text(ref_boxes[:, 1:], boxes / s) + " px"
            else:
                out["nms_in"] = f"{len(scores)} vs {len(ref_scores)} RoIs: not comparable"
    if family in ("yolov3", "ssd") and f"{p}/nms_in.scores" in keys and "nms" in seen:
        boxes, scores = (to_numpy(t) for t in seen["nms"][:2])
        ref_boxes = z[f"{p}/nms_in.bboxes"].astype(np.float64)
        ref_scores = z[f"{p}/nms_in.scores"]
        if family == "ssd":  # normalised boxes, background score row 0
            h0, w0 = original_size(family, z, p)
            ref_boxes = ref_boxes * np.array([w0, h0, w0, h0])
            ref_scores = ref_scores[:, 1:]
        out["nms_in.scores"] = diff_text(ref_scores, scores)
        out["nms_in.bboxes"] = diff_text(ref_boxes, boxes) + " px"
    return out


def run_model(model, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    import paddle

    feed = {k: paddle.to_tensor(v) for k, v in batch.items()}
    with paddle.no_grad(), capture(model) as seen:
        out = model.predict(feed)
    return to_numpy(out["bbox"]).reshape(-1, 6), seen


class RcnnDiagnosis:
    """Fluid-era replays of the R-CNN stages (``legacy_replay``) accumulated over the photos:
    stage 1 from our RPN outputs, stage 2 on v0.1's proposals, both chained, and (``ablate``)
    stage 2 with one behaviour at a time back to its 2.x value."""

    def __init__(self, model, fpn: bool, nms: dict, ablate: bool, behaviour: dict):
        from legacy_replay import FLUID, rpn_hooks

        self.model, self.fpn, self.nms, self.behaviour = model, fpn, nms, behaviour
        self.seen, self.handles = rpn_hooks(model)
        self.rois: list[str] = []
        self.stage2 = MatchResult(0, 0, 0)
        self.chained = MatchResult(0, 0, 0)
        self.scores: list[float] = []
        self.boxes: list[float] = []
        variants = [k for k in FLUID if fpn or k != "distribute_fpn_pixel_offset"]
        self.ablation = {k: MatchResult(0, 0, 0) for k in variants} if ablate else {}
        kinds = {type(layer).__name__ for _, layer in model.named_sublayers()}
        self.has_box_head = "BBoxHead" in kinds
        self.cascade = "CascadeHead" in kinds
        self.mask_probs: list[float] = []  # max |our mask head (v0.1 RoIs) - v0.1's|
        self.paste_iou: list[float] = []  # our paste vs v0.1's, on v0.1's masks and boxes

    def reset(self) -> None:
        self.seen["score"].clear()
        self.seen["delta"].clear()
        self.seen.pop("box_in", None)

    def photo(self, z, p: str, net: dict) -> None:
        """After the model ran on photo ``p`` (the hooks hold its tensors)."""
        import paddle
        from legacy_replay import FLUID, replay_box_head, replay_rpn, res5_variant_d

        info = z[f"{p}/im_info"][0]
        rois = replay_rpn(
            self.seen["score"], self.seen["delta"], info, self.fpn, 1000 if self.fpn else 6000, 1000
        )
        self.rois.append(compare_rois(z[f"{p}/rois"], rois))
        if self.cascade and "box_in" in self.seen:
            return self.photo_cascade(z, p, rois)
        if not self.has_box_head or "box_in" not in self.seen:
            return
        ref = reference_detections("rcnn", z, p)
        feats = self.seen["box_in"][0]
        args = (float(info[2]), original_size("rcnn", z, p), self.fpn, self.nms)
        head = self.model.bbox_head
        variant_d = self.behaviour.get("res5_shortcut_avgpool", False)
        with paddle.no_grad(), res5_variant_d(head) if variant_d else contextlib.nullcontext():
            boxes, scores, det = replay_box_head(head, feats, z[f"{p}/rois"], *args)
            self.stage2 = self.stage2 + match(ref, det)
            self.scores.append(np.abs(scores - z[f"{p}/nms_in.scores"][:, 1:]).max())
            self.boxes.append(np.abs(boxes - z[f"{p}/nms_in.bboxes"][:, 1:]).max())
            self.chained = self.chained + match(ref, replay_box_head(head, feats, rois, *args)[2])
            for key in self.ablation:
                change = {key: not FLUID[key]}
                det = replay_box_head(head, feats, z[f"{p}/rois"], *args, **change)[2]
                self.ablation[key] = self.ablation[key] + match(ref, det)
            if getattr(self.model, "mask_head", None) is not None and f"{p}/mask" in z.files:
                self.masks(z, p, feats, ref, float(info[2]))

    def photo_cascade(self, z, p: str, rois: np.ndarray) -> None:
        import paddle
        from legacy_replay import replay_cascade

        info = z[f"{p}/im_info"][0]
        ref = reference_detections("rcnn", z, p)
        feats = self.seen["box_in"][0]
        args = (float(info[2]), original_size("rcnn", z, p), self.nms)
        head = self.model.bbox_head
        with paddle.no_grad():
            boxes, scores, det = replay_cascade(head, feats, z[f"{p}/rois"], *args)
            self.stage2 = self.stage2 + match(ref, det)
            self.scores.append(np.abs(scores - z[f"{p}/nms_in.scores"][:, 1:]).max())
            self.boxes.append(np.abs(boxes - z[f"{p}/nms_in.bboxes"][:, 1:]).max())
            self.chained = self.chained + match(ref, replay_cascade(head, feats, rois, *args)[2])

    def masks(self, z, p: str, feats, ref: np.ndarray, scale: float) -> None:
        """Mask branch: our mask head on v0.1's detections (v0.1 RoIs) against v0.1's mask
        probabilities, and our paste against v0.1's on v0.1's own masks."""
        from legacy_replay import paste_mask_v01, replay_masks

        from ppdet.modeling.postprocess.mask import paste_masks

        if not len(ref):
            return
        v01 = z[f"{p}/mask"]  # [N, C + 1, M, M]
        v01 = v01[np.arange(len(ref)), ref[:, 0].astype(int) + 1]  # [N, M, M] own class
        ours = replay_masks(self.model, feats, ref, scale, self.fpn)
        self.mask_probs.append(float(np.abs(ours - v01).max()))
        h0, w0 = (int(v) for v in original_size("rcnn", z, p))
        pasted = paste_masks(v01, ref[:, 2:], h0, w0)
        for k in range(len(ref)):
            a = paste_mask_v01(v01[k], ref[k, 2:], h0, w0).astype(bool)
            b = pasted[k].astype(bool)
            union = (a | b).sum()
            self.paste_iou.append(float((a & b).sum() / union) if union else 1.0)

    def summary(self) -> dict[str, str]:
        out = {"fluid RPN replay: rois": " / ".join(self.rois)}
        if self.scores:
            out["fluid stage-2 replay on v0.1 rois"] = (
                f"{self.stage2.matched}/{self.stage2.reference} matched, nms_in.scores max|d| "
                f"{max(self.scores):.2g}, nms_in.bboxes max|d| {max(self.boxes):.2g} px"
            )
            out["both stages replayed"] = f"{self.chained.matched}/{self.chained.reference} matched"
        if self.mask_probs:
            iou = np.asarray(self.paste_iou)
            out["masks: our mask head on v0.1 detections, v0.1 RoIAlign"] = (
                f"max|d| {max(self.mask_probs):.2g} (probabilities)"
            )
            out["masks: our paste vs v0.1 mask2out, same masks and boxes"] = (
                f"mean IoU {iou.mean():.3f}, min {iou.min():.3f}, "
                f"{100 * (iou == 1).mean():.0f}% identical"
            )
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class RetinaDiagnosis:
    """RetinaNet: our head outputs in v0.1's anchor order against ``det_in.*`` per level, and
    fluid's ``retinanet_detection_output`` (``legacy_replay``) run on v0.1's own inputs (a check
    of the replay) and on ours."""

    def __init__(self, meta: dict):
        self.nms = meta["nms"]
        self.inputs: dict[str, float] = {"scores": 0.0, "bboxes": 0.0, "anchors": 0.0}
        self.on_v01 = MatchResult(0, 0, 0)
        self.on_ours = MatchResult(0, 0, 0)

    def photo(self, z, p: str, seen: dict) -> None:
        from legacy_replay import (
            retina_anchors,
            retina_level_in_v01_order,
            retinanet_detection_output,
        )

        if "retina" not in seen:
            return
        logits, deltas = seen["retina"]
        num_classes = logits[0].shape[1] // 9
        ours_s, ours_d, anchors, ref_s, ref_d, ref_a = [], [], [], [], [], []
        for level, (lg, dl) in enumerate(zip(logits, deltas)):
            s, d = retina_level_in_v01_order(lg, dl, num_classes)
            a = retina_anchors(lg.shape[2], lg.shape[3], 2 ** (level + 3))
            ours_s.append(s), ours_d.append(d), anchors.append(a)
            rs = z[f"{p}/det_in.scores{level}"].reshape(-1, num_classes)
            rd = z[f"{p}/det_in.bboxes{level}"].reshape(-1, 4)
            ra = z[f"{p}/det_in.anchors{level}"].reshape(-1, 4)
            ref_s.append(rs), ref_d.append(rd), ref_a.append(ra)
            for key, a_, b_ in (("scores", rs, s), ("bboxes", rd, d), ("anchors", ra, a)):
                if a_.shape == b_.shape:
                    self.inputs[key] = max(self.inputs[key], float(np.abs(a_ - b_).max()))
                else:
                    self.inputs[key] = float("inf")
        info = z[f"{p}/im_info"][0]
        nms = dict(
            score_threshold=self.nms.get("score_threshold", 0.05),
            nms_threshold=self.nms.get("nms_threshold", 0.5),
            nms_top_k=self.nms.get("nms_top_k", 1000),
            keep_top_k=self.nms.get("keep_top_k", 100),
        )
        ref = reference_detections("retinanet", z, p)
        self.on_v01 = self.on_v01 + match(
            ref, retinanet_detection_output(ref_s, ref_d, ref_a, info, **nms)
        )
        self.on_ours = self.on_ours + match(
            ref, retinanet_detection_output(ours_s, ours_d, anchors, info, **nms)
        )

    def summary(self) -> dict[str, str]:
        inputs = ", ".join(f"{k} max|d| {v:.2g}" for k, v in self.inputs.items())
        return {
            "det_in (ours in v0.1 order, fluid anchors)": inputs,
            "fluid retinanet_detection_output replay on v0.1's det_in": (
                f"{self.on_v01.matched}/{self.on_v01.reference} matched"
            ),
            "the same replay on our head outputs": (
                f"{self.on_ours.matched}/{self.on_ours.reference} matched"
            ),
        }


def ssd_relu_extra_blocks(model, z, stems: list[str]) -> dict[str, str]:
    """SSD: v0.1's MobileNetV1 extra blocks (conv7_*) apply ReLU where ours apply ReLU6; rerun
    on v0.1's inputs with ReLU there (set on our layers for this run only)."""
    layers = [
        layer
        for _, block in model.named_sublayers()
        if type(block).__name__ == "ExtraBlock"
        for layer in (block.pointwise_conv, block.normal_conv)
    ]
    if not layers:
        return {}
    saved = [layer.act for layer in layers]
    total = MatchResult(0, 0, 0)
    try:
        for layer in layers:
            layer.act = "relu"
        for p in stems:
            det, _ = run_model(model, network_input("ssd", z, p))
            total = total + match(reference_detections("ssd", z, p), det)
    finally:
        for layer, act in zip(layers, saved):
            layer.act = act
    return {
        "extra blocks with ReLU (v0.1) instead of ReLU6": (
            f"{total.matched}/{total.reference} matched"
        )
    }
