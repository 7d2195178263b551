"""Compare our v0.1 configs + converted v0.1 tarballs with PaddleDetection v0.1 itself.

The reference is the legacy oracle (PaddleDetection v0.1 on fluid 1.8.5, run by its own
harness outside this repository): per model ``<model>.tar`` (a genuine v0.1 checkpoint with
seeded, calibrated weights) and ``<model>.npz`` (v0.1's network inputs and outputs on three
photos, plus intermediate tensors). For every model found in ``--oracle-dir`` this script

1. converts the tarball with ``ppdet.zoo.legacy.convert`` and loads it strictly into the
   model of our v0.1 config (``configs/<model>.yml``; see ``CASES``);
2. feeds v0.1's own network input (``<p>/image``; ``im_info`` / ``im_size`` / ``im_shape``
   mapped to our ``im_shape`` / ``scale_factor``, see ``network_input``) and matches our
   detections with v0.1's: same label, IoU >= 0.99, |score difference| <= 1e-3 (``match``);
3. compares the intermediate tensors the npz holds (``rois``, ``nms_in.*``, ``det_in.*``)
   with ours, captured by forward hooks, to localise a difference;
4. also runs our config's TestReader on the photo and reports how far its input is from
   v0.1's and how many detections still match (``--no-pipeline`` skips this).

It prints one table and writes it into BENCHMARK.md between its own markers:

    MKL_DEBUG_CPU_TYPE=5 python bench/compare_legacy.py --oracle-dir /path/to/oracle/out

Target per architecture: >= 98 % of v0.1's detections matched.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

MARK_BEGIN = "<!-- legacy:begin -->"
MARK_END = "<!-- legacy:end -->"
IOU_MIN = 0.99
SCORE_TOL = 1e-3
TARGET = 0.98


# ---------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One v0.1 model: its family (input mapping, intermediates), our v0.1 config, and the
    closest 2.x config plus overrides used while the v0.1 config does not exist yet."""

    family: str  # yolov3 | ssd | rcnn | retinanet
    config: str
    fallback: str
    overrides: tuple[str, ...] = ()


_YOLO_FALLBACK = ("BBoxPostProcess.decode.conf_thresh=0.01",)
CASES: dict[str, Case] = {
    "yolov3_darknet": Case(
        "yolov3",
        "configs/yolov3_darknet.yml",
        "configs/yolov3/yolov3_darknet53_270e_coco.yml",
        _YOLO_FALLBACK,
    ),
    "yolov3_mobilenet_v1": Case(
        "yolov3",
        "configs/yolov3_mobilenet_v1.yml",
        "configs/yolov3/yolov3_mobilenet_v1_270e_coco.yml",
        _YOLO_FALLBACK,
    ),
    "yolov3_r34": Case(
        "yolov3",
        "configs/yolov3_r34.yml",
        "configs/yolov3/yolov3_r34_270e_coco.yml",
        _YOLO_FALLBACK,
    ),
    "ssd_mobilenet_v1_voc": Case(
        "ssd",
        "configs/ssd/ssd_mobilenet_v1_voc.yml",
        "configs/ssd/ssd_mobilenet_v1_300_120e_voc.yml",
        ("SSDHead.anchor_generator.clip=false",),
    ),
    "faster_rcnn_r50_1x": Case(
        "rcnn", "configs/faster_rcnn_r50_1x.yml", "configs/faster_rcnn/faster_rcnn_r50_1x_coco.yml"
    ),
    "faster_rcnn_r50_vd_1x": Case(
        "rcnn",
        "configs/faster_rcnn_r50_vd_1x.yml",
        "configs/faster_rcnn/faster_rcnn_r50_vd_1x_coco.yml",
    ),
    "faster_rcnn_r50_fpn_1x": Case(
        "rcnn",
        "configs/faster_rcnn_r50_fpn_1x.yml",
        "configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yml",
    ),
    "faster_rcnn_x101_vd_64x4d_fpn_1x": Case(
        "rcnn",
        "configs/faster_rcnn_x101_vd_64x4d_fpn_1x.yml",
        "configs/faster_rcnn/faster_rcnn_x101_vd_64x4d_fpn_1x_coco.yml",
    ),
    "faster_rcnn_se154_vd_fpn_s1x": Case(
        "rcnn", "configs/faster_rcnn_se154_vd_fpn_s1x.yml", "", ()
    ),
    "mask_rcnn_r50_1x": Case(
        "rcnn", "configs/mask_rcnn_r50_1x.yml", "configs/mask_rcnn/mask_rcnn_r50_1x_coco.yml"
    ),
    "mask_rcnn_r50_fpn_1x": Case(
        "rcnn",
        "configs/mask_rcnn_r50_fpn_1x.yml",
        "configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml",
    ),
    "cascade_rcnn_r50_fpn_1x": Case(
        "rcnn",
        "configs/cascade_rcnn_r50_fpn_1x.yml",
        "configs/cascade_rcnn/cascade_rcnn_r50_fpn_1x_coco.yml",
    ),
    "retinanet_r50_fpn_1x": Case(
        "retinanet",
        "configs/retinanet_r50_fpn_1x.yml",
        "configs/retinanet/retinanet_r50_fpn_1x_coco.yml",
        ("FPN.use_c5=true",),
    ),
}


def config_for(model: str) -> tuple[str, tuple[str, ...]]:
    """(config path, overrides): the v0.1 config when it exists, else the 2.x fallback."""
    case = CASES[model]
    if (REPO / case.config).is_file():
        return case.config, ()
    if not case.fallback:
        raise FileNotFoundError(f"{case.config} does not exist and {model} has no 2.x config")
    return case.fallback, case.overrides


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


# ---------------------------------------------------------------- intermediates


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


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def _diff(a: np.ndarray, b: np.ndarray) -> str:
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


def compare_intermediates(family: str, z, p: str, seen: dict, net: dict) -> dict[str, str]:
    """{tensor name: one-line comparison} for the npz's intermediates of photo ``p``."""
    out: dict[str, str] = {}
    keys = set(z.files)
    if family == "rcnn" and f"{p}/rois" in keys and "rpn" in seen:
        rois = _np(seen["rpn"][0][0]) if isinstance(seen["rpn"][0], list) else _np(seen["rpn"][0])
        out["rois"] = compare_rois(z[f"{p}/rois"], rois)
        if "rcnn_decode" in seen and f"{p}/nms_in.scores" in keys:
            boxes, scores = (_np(t) for t in seen["rcnn_decode"])
            ref_scores = z[f"{p}/nms_in.scores"]  # [R, C+1], background column 0
            ref_boxes = z[f"{p}/nms_in.bboxes"]  # [R, C+1, 4] original pixels
            s = float(net["scale_factor"][0, 0])
            if len(ref_scores) == len(scores):
                out["nms_in.scores"] = _diff(ref_scores[:, 1:], scores)
                out["nms_in.bboxes"] = _diff(ref_boxes[:, 1:], boxes / s) + " px"
            else:
                out["nms_in"] = f"{len(scores)} vs {len(ref_scores)} RoIs: not comparable"
    if family in ("yolov3", "ssd") and f"{p}/nms_in.scores" in keys and "nms" in seen:
        boxes, scores = (_np(t) for t in seen["nms"][:2])
        ref_boxes = z[f"{p}/nms_in.bboxes"].astype(np.float64)
        ref_scores = z[f"{p}/nms_in.scores"]
        if family == "ssd":  # normalised boxes, background score row 0
            h0, w0 = original_size(family, z, p)
            ref_boxes = ref_boxes * np.array([w0, h0, w0, h0])
            ref_scores = ref_scores[:, 1:]
        out["nms_in.scores"] = _diff(ref_scores, scores)
        out["nms_in.bboxes"] = _diff(ref_boxes, boxes) + " px"
    return out


# ---------------------------------------------------------------- running


def build(model_key: str, tar: str):
    """(model with the converted tarball loaded strictly, config path, overrides, report)."""
    import ppdet
    from ppdet.zoo.legacy import convert
    from ppdet.zoo.weights import load_state_dict

    config, overrides = config_for(model_key)
    cfg = ppdet.load_config(str(REPO / config), list(overrides))
    model = ppdet.build_model(cfg)
    state, report = convert(tar, model=model_key)
    load_state_dict(model, state, tar, strict=True, quiet=True)
    model.eval()
    return model, cfg, config, overrides, report


def run_model(model, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    import paddle

    feed = {k: paddle.to_tensor(v) for k, v in batch.items()}
    with paddle.no_grad(), capture(model) as seen:
        out = model(feed)
    return _np(out["bbox"]).reshape(-1, 6), seen


def pipeline_inputs(cfg: dict, photos: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Our TestReader's batch for each photo: {stem: {image, im_shape, scale_factor}}."""
    from ppdet.data.loader import build_dataset, build_loader

    cfg = dict(cfg, TestDataset={**cfg["TestDataset"], "anno_path": None})  # no label file needed
    dataset = build_dataset(cfg, "test")
    dataset.set_images(photos)
    loader = build_loader(cfg, "test", dataset)
    files = {int(r["im_id"][0]): r["im_file"] for r in dataset.records}
    out = {}
    for batch in loader:
        for b, im_id in enumerate(_np(batch["im_id"]).reshape(-1)):
            stem = os.path.splitext(os.path.basename(files[int(im_id)]))[0]
            out[stem] = {k: _np(batch[k])[b : b + 1] for k in ("image", "im_shape", "scale_factor")}
    return out


def input_diff(ref: dict, ours: dict) -> float:
    """max |difference| of the two network inputs over their common area (inf if the sizes
    differ by more than padding)."""
    a, b = ref["image"], ours["image"]
    h, w = min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3])
    if abs(a.shape[2] - b.shape[2]) > 127 or abs(a.shape[3] - b.shape[3]) > 127:
        return float("inf")
    return float(np.abs(a[:, :, :h, :w] - b[:, :, :h, :w]).max())


@dataclasses.dataclass
class Row:
    model: str
    family: str
    config: str
    result: MatchResult
    per_photo: dict
    intermediates: dict
    pipeline: MatchResult | None = None
    input_diff: float | None = None
    seconds: float = 0.0
    diagnosis: dict = dataclasses.field(default_factory=dict)  # replays (R-CNN): name -> text
    ablation: dict = dataclasses.field(default_factory=dict)  # behaviour left out -> result

    @property
    def share(self) -> float:
        return self.result.matched / max(self.result.reference, 1)


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


def compare_model(model_key: str, oracle: Path, images: Path | None, ablate: bool = False) -> Row:
    tic = time.perf_counter()
    family = CASES[model_key].family
    tar, npz = oracle / f"{model_key}.tar", oracle / f"{model_key}.npz"
    model, cfg, config, overrides, _ = build(model_key, str(tar))
    z = np.load(npz)
    meta = json.loads(str(z["meta"]))
    stems = photo_stems(z)
    total = MatchResult(0, 0, 0)
    per_photo, inter = {}, {}
    diag = retina = None
    if family == "rcnn":
        from ppdet.zoo.legacy import LEGACY_MODELS

        behaviour = LEGACY_MODELS[model_key].behaviour
        diag = RcnnDiagnosis(model, "fpn" in model_key, meta["nms"], ablate, behaviour)
    if family == "retinanet":
        retina = RetinaDiagnosis(meta)
    for p in stems:
        net = network_input(family, z, p)
        if diag:
            diag.reset()
        ours, seen = run_model(model, net)
        res = match(reference_detections(family, z, p), ours)
        total = total + res
        per_photo[p] = res
        inter[p] = compare_intermediates(family, z, p, seen, net)
        if diag:
            diag.photo(z, p, net)
        if retina:
            retina.photo(z, p, seen)
        print(
            f"  {model_key} {p}: {res.matched}/{res.reference} matched (ours {res.ours}); "
            + "; ".join(f"{k} {v}" for k, v in inter[p].items()),
            flush=True,
        )
    row = Row(
        model_key, family, config + "".join(f" -o {o}" for o in overrides), total, per_photo, inter
    )
    if diag:
        diag.close()
        row.diagnosis, row.ablation = diag.summary(), diag.ablation
    if retina:
        row.diagnosis = retina.summary()
    if family == "ssd":
        row.diagnosis = ssd_relu_extra_blocks(model, z, stems)
    if row.diagnosis:
        for k, v in row.diagnosis.items():
            print(f"  {model_key} {k}: {v}", flush=True)
    if images is not None:
        files = [str(images / str(n)) for n in z["images"]]
        ours_in = pipeline_inputs(cfg, files)
        pipe = MatchResult(0, 0, 0)
        worst = 0.0
        for p in stems:
            ref_in = network_input(family, z, p)
            worst = max(worst, input_diff(ref_in, ours_in[p]))
            det, _ = run_model(model, ours_in[p])
            pipe = pipe + match(reference_detections(family, z, p), det)
        row.pipeline, row.input_diff = pipe, worst
        print(
            f"  {model_key} our pipeline: input max|d| {worst:.3g}, "
            f"{pipe.matched}/{pipe.reference} matched",
            flush=True,
        )
    row.seconds = time.perf_counter() - tic
    return row


# ---------------------------------------------------------------- report


def record(r: Row) -> dict:
    """A row as plain JSON data (the results store of ``--json``)."""
    return {
        "model": r.model,
        "family": r.family,
        "config": r.config,
        "result": dataclasses.asdict(r.result),
        "per_photo": {p: dataclasses.asdict(v) for p, v in r.per_photo.items()},
        "intermediates": r.intermediates,
        "pipeline": dataclasses.asdict(r.pipeline) if r.pipeline else None,
        "input_diff": r.input_diff,
        "diagnosis": r.diagnosis,
        "ablation": {k: dataclasses.asdict(v) for k, v in r.ablation.items()},
        "seconds": round(r.seconds, 1),
    }


def _share(res: dict) -> float:
    return res["matched"] / max(res["reference"], 1)


def table(records: list[dict]) -> list[str]:
    """The BENCHMARK.md section body: results, then where the differences are."""
    lines = [
        "| model | config | v0.1 detections | matched | share | our rows | our TestReader vs "
        "v0.1's input (max abs diff) | target |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        res = r["result"]
        diff = "-" if r["input_diff"] is None else f"{r['input_diff']:.2g}"
        ok = "pass" if _share(res) >= TARGET else "fail"
        lines.append(
            f"| {r['model']} | `{r['config']}` | {res['reference']} | {res['matched']} | "
            f"{100 * _share(res):.1f}% | {res['ours']} | {diff} | {ok} |"
        )
    lines += [
        "",
        "Where they differ: our intermediate tensors against the npz's (first photo), and "
        "replays that recompute a stage the fluid way from our model's own tensors "
        "(`bench/legacy_replay.py`):",
        "",
        "| model | ours vs v0.1 (first photo) | fluid-era replays on our tensors |",
        "|---|---|---|",
    ]
    for r in records:
        first = next(iter(r["intermediates"].values()), {})
        inter = "; ".join(f"{k}: {v}" for k, v in first.items()) or "-"
        diag = "; ".join(f"{k}: {v}" for k, v in r["diagnosis"].items()) or "-"
        lines.append(f"| {r['model']} | {inter} | {diag} |".replace("|d|", "\\|d\\|"))
    ablated = [r for r in records if r["ablation"]]
    if ablated:
        keys = list(ablated[0]["ablation"])
        lines += [
            "",
            "R-CNN second stage on v0.1's own proposals, fluid-era replay with ONE behaviour "
            "put back to the 2.x way (`--ablate`): v0.1 detections still matched.",
            "",
            "| behaviour left out | " + " | ".join(r["model"] for r in ablated) + " |",
            "|---|" + "---:|" * len(ablated),
        ]
        for key in keys:
            cells = []
            for r in ablated:
                v = r["ablation"].get(key)
                cells.append(f"{v['matched']}/{v['reference']}" if v else "-")
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def write_section(path: str, text: str) -> None:
    """Replace (or append) this script's section of BENCHMARK.md, atomically."""
    from ppdet.atomic_io import atomic_write_text

    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    section = f"{MARK_BEGIN}\n{text.rstrip()}\n{MARK_END}"
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        new = head + section + rest.split(MARK_END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    atomic_write_text(path, new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--oracle-dir",
        default=os.environ.get("LEGACY_PEER_OUT", ""),
        help="folder with <model>.tar/.npz from the v0.1 oracle ($LEGACY_PEER_OUT)",
    )
    parser.add_argument("--images", default="", help="the photos (default: <oracle-dir>/../images)")
    parser.add_argument("--models", nargs="*", help=f"subset of: {', '.join(CASES)}")
    parser.add_argument("--no-pipeline", action="store_true", help="skip our TestReader run")
    parser.add_argument(
        "--ablate", action="store_true", help="R-CNN: replay stage 2 without each behaviour"
    )
    parser.add_argument(
        "--json", default="", help="results store: read, updated with the models run, written"
    )
    parser.add_argument("--out", default=str(REPO / "BENCHMARK.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if not args.oracle_dir or not os.path.isdir(args.oracle_dir):
        parser.error("--oracle-dir: the folder holding the oracle's <model>.tar and <model>.npz")
    oracle = Path(args.oracle_dir)
    images = None
    if not args.no_pipeline:
        images = Path(args.images) if args.images else oracle.parent / "images"
        if not images.is_dir():
            parser.error(f"--images: no such folder {images} (or pass --no-pipeline)")

    import paddle

    paddle.set_device("cpu")
    wanted = args.models or list(CASES)
    for m in wanted:
        if m not in CASES:
            parser.error(f"unknown model {m}; one of {', '.join(CASES)}")
    present = [
        m for m in wanted if (oracle / f"{m}.tar").is_file() and (oracle / f"{m}.npz").is_file()
    ]
    rows = []
    for m in present:
        print(f"{m}:", flush=True)
        rows.append(compare_model(m, oracle, images, args.ablate))
    records = {}
    if args.json and os.path.isfile(args.json):
        records = {r["model"]: r for r in json.loads(Path(args.json).read_text())}
    records.update({r.model: record(r) for r in rows})
    if args.json:
        from ppdet.atomic_io import atomic_write_text

        atomic_write_text(args.json, json.dumps(list(records.values()), indent=1))
    ordered = [records[m] for m in CASES if m in records]
    lines = table(ordered)
    print("\n".join(lines))
    if not args.no_write:
        command = (
            "MKL_DEBUG_CPU_TYPE=5 python bench/compare_legacy.py --oracle-dir <oracle out> "
            "--json <results.json> [--models ...] [--ablate]"
        )
        text = [
            "## PaddleDetection v0.1 checkpoints: our configs vs v0.1 itself",
            "",
            f"`{command}` (models run one set at a time, collected in the json). The reference is "
            "PaddleDetection v0.1 (release/0.1) on fluid 1.8.5 with seeded, calibrated random "
            "weights saved as genuine v0.1 tarballs, and v0.1's own detections on 3 photos "
            "(astronaut, chelsea, coffee). Each tarball is converted by `ppdet.zoo.legacy`, "
            "loaded strictly into the model of the config shown and fed v0.1's own network "
            "input. A v0.1 detection is matched by one of ours with the same label, IoU >= "
            f"{IOU_MIN} and |score difference| <= {SCORE_TOL}. Target: >= {TARGET:.0%} "
            "matched. Random weights make scores hypersensitive: our TestReader's input is "
            "shown as its largest difference from v0.1's (OpenCV 5 vs 4.1 interpolations differ "
            "by one grey level on a few percent of pixels, enough to move random-weight "
            "detections).",
            "",
            *lines,
        ]
        write_section(args.out, "\n".join(text))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
