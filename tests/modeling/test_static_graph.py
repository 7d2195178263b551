"""The post-process components, and every detector's ``postprocess(forward(...))``, trace into
a static graph (``paddle.jit.to_static``, full graph, image sizes unknown until run time) and
give the eager numbers: what the exporter relies on."""

from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle.static import InputSpec

from ppdet.modeling.postprocess import (
    BBoxPostProcess,
    MaskPostProcess,
    MultiClassNMS,
    RCNNBox,
    RetinaBox,
    SSDBox,
    YOLOBox,
)
from tests.modeling.detector_checks import tiny_detector

T = paddle.to_tensor


def static_equals_eager(layer, args, spec):
    """Run ``layer`` eagerly and traced (full graph, ``spec``); every output must be equal."""
    eager = layer(*args)
    traced = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    static = traced(*args)
    assert len(static) == len(eager)
    for e, s in zip(eager, static):
        assert e.shape == s.shape and e.dtype == s.dtype
        np.testing.assert_allclose(s.numpy(), e.numpy(), rtol=1e-5, atol=1e-4)
    return eager


class RCNNWithMasks(paddle.nn.Layer):
    """R-CNN box post-process then the mask paste of its detections."""

    def __init__(self):
        super().__init__()
        nms = MultiClassNMS(score_threshold=0.05, nms_top_k=-1, keep_top_k=100, nms_threshold=0.5)
        self.post = BBoxPostProcess(RCNNBox(), nms)
        self.masks = MaskPostProcess()

    def forward(self, deltas, scores, rois, rois_num, im_shape, scale_factor, probs):
        meta = {"im_shape": im_shape, "scale_factor": scale_factor}
        raw = {"deltas": deltas, "scores": scores, "rois": rois, "rois_num": rois_num}
        bbox, num = self.post(raw, meta)
        return bbox, num, self.masks(probs[: paddle.shape(bbox)[0]], bbox, num, meta)


def test_rcnn_boxes_and_masks_trace():
    rng = np.random.default_rng(0)
    r, c = 50, 3
    xy = rng.uniform(0, 60, (r, 2))
    rois = np.concatenate([xy, xy + rng.uniform(5, 40, (r, 2))], 1).astype("float32")
    scores = F.softmax(T(rng.normal(0, 2, (r, c + 1)).astype("float32"))).numpy()
    args = [
        rng.normal(0, 0.5, (r, 4 * c)).astype("float32"),
        scores,
        rois,
        np.array([30, 20], "int32"),
        np.array([[96, 128], [80, 100]], "float32"),
        np.array([[1.0, 1.0], [0.5, 0.5]], "float32"),
        rng.uniform(0, 1, (200, 28, 28)).astype("float32"),
    ]
    spec = [
        InputSpec([-1, 4 * c]),
        InputSpec([-1, c + 1]),
        InputSpec([-1, 4]),
        InputSpec([-1], "int32"),
        InputSpec([-1, 2]),
        InputSpec([-1, 2]),
        InputSpec([-1, 28, 28]),
    ]
    bbox, num, masks = static_equals_eager(RCNNWithMasks(), [T(a) for a in args], spec)
    assert bbox.shape[0] > 10 and masks.shape == [bbox.shape[0], 160, 200]


class Dense(paddle.nn.Layer):
    """``BBoxPostProcess(decode)`` on the raw dict ``raw(*tensors)`` builds."""

    def __init__(self, decode, raw):
        super().__init__()
        self.post = BBoxPostProcess(decode, MultiClassNMS(score_threshold=0.01, keep_top_k=50))
        self.raw = raw

    def run(self, im_shape, scale_factor, *tensors):
        return self.post(self.raw(*tensors), {"im_shape": im_shape, "scale_factor": scale_factor})


class Retina(Dense):
    def forward(self, im_shape, scale_factor, logits0, logits1, deltas0, deltas1, a0, a1):
        return self.run(im_shape, scale_factor, logits0, logits1, deltas0, deltas1, a0, a1)


class SSD(Dense):
    def forward(self, im_shape, scale_factor, deltas, logits, priors):
        return self.run(im_shape, scale_factor, deltas, logits, priors)


class YOLO(Dense):
    def forward(self, im_shape, scale_factor, out0, out1):
        return self.run(im_shape, scale_factor, out0, out1)


META = [T([[64.0, 96.0]]), T([[0.5, 0.8]])]
META_SPEC = [InputSpec([-1, 2]), InputSpec([-1, 2])]


def test_retina_decode_traces_with_unknown_level_sizes():
    rng = np.random.default_rng(1)
    a, c = 3, 2
    sizes = [(8, 12), (4, 6)]  # level 0 has more anchors (288) than nms_pre: the top-k runs
    logits = [T(rng.normal(0, 2, (1, a * c, h, w)).astype("float32")) for h, w in sizes]
    deltas = [T(rng.normal(0, 0.2, (1, 4 * a, h, w)).astype("float32")) for h, w in sizes]
    anchors = [
        T((np.tile(rng.uniform(0, 40, (h * w * a, 2)), 2) + [0, 0, 8, 8]).astype("float32"))
        for h, w in sizes
    ]
    decode = RetinaBox(num_classes=c, nms_pre=100)
    layer = Retina(
        decode,
        lambda l0, l1, d0, d1, a0, a1: {
            "cls_logits": [l0, l1],
            "bbox_deltas": [d0, d1],
            "anchors": [a0, a1],
        },
    )
    spec = META_SPEC + [InputSpec([-1, a * c, -1, -1])] * 2 + [InputSpec([-1, 4 * a, -1, -1])] * 2
    spec += [InputSpec([-1, 4])] * 2
    bbox, num = static_equals_eager(layer, META + logits + deltas + anchors, spec)
    assert num.numpy().tolist() == [bbox.shape[0]] and bbox.shape[0] > 0


def test_ssd_and_yolo_decoders_trace():
    rng = np.random.default_rng(2)
    n, c = 40, 3
    xy = rng.uniform(0, 0.7, (n, 2))
    priors = np.concatenate([xy, xy + 0.2], 1).astype("float32")
    args = [
        T(rng.normal(0, 0.5, (1, n, 4)).astype("float32")),
        T(rng.normal(0, 2, (1, n, c + 1)).astype("float32")),
        T(priors),
    ]
    layer = SSD(SSDBox(), lambda d, c, p: {"box_deltas": d, "cls_logits": c, "priors": p})
    spec = META_SPEC + [InputSpec([-1, -1, 4]), InputSpec([-1, -1, c + 1]), InputSpec([-1, 4])]
    bbox, _ = static_equals_eager(layer, META + args, spec)
    assert bbox.shape[0] > 0

    decode = YOLOBox(conf_thresh=0.01, downsample_ratio=32)
    decode.set_anchors([[[30, 40], [60, 50]], [[10, 12], [20, 16]]])
    outputs = [T(rng.normal(0, 2, (1, 2 * (5 + c), s, s)).astype("float32")) for s in (2, 4)]
    layer = YOLO(decode, lambda o0, o1: {"outputs": [o0, o1]})
    spec = META_SPEC + [InputSpec([-1, 2 * (5 + c), -1, -1])] * 2
    bbox, _ = static_equals_eager(layer, [T([[64.0, 64.0]]), T([[0.5, 0.5]])] + outputs, spec)
    assert bbox.shape[0] > 0


REPO = Path(__file__).resolve().parents[2]
# (demo config, overrides that shrink it and keep detections of the untrained model)
DETECTORS = [
    ("yolov3/yolov3_mobilenet_v1_demo.yml", ["BBoxPostProcess.decode.conf_thresh=0.0"]),
    ("ssd/ssd_mobilenet_v1_demo.yml", ["MobileNet.scale=0.25"]),
    ("retinanet/retinanet_r18_fpn_demo.yml", ["RetinaHead.nms.score_threshold=0.0"]),
    ("faster_rcnn/faster_rcnn_r18_fpn_demo.yml", []),
    ("cascade_rcnn/cascade_mask_rcnn_r18_fpn_demo.yml", ["MaskFeat.num_convs=1"]),
]


class Exported(paddle.nn.Layer):
    """What an exporter traces: image, im_shape, scale_factor -> the eval contract."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image, im_shape, scale_factor):
        batch = {"image": image, "im_shape": im_shape, "scale_factor": scale_factor}
        out = self.model.postprocess(self.model(batch), batch)
        return [out[k] for k in sorted(out)]


@pytest.mark.parametrize("config, extra", DETECTORS)
def test_detector_traces_into_one_graph(config, extra):
    overrides = ["num_classes=3", "BBoxPostProcess.nms.score_threshold=0.0", *extra]
    if "rcnn" in config or "retina" in config:
        overrides.append("FPN.out_channel=16")
    model = tiny_detector(str(REPO / "configs" / config), overrides)
    model.eval()
    rng = np.random.default_rng(0)
    image = T(rng.normal(size=(1, 3, 128, 160)).astype("float32"))
    meta = [T([[128.0, 160.0]]), T([[0.5, 0.5]])]
    spec = [InputSpec([1, 3, -1, -1]), InputSpec([1, 2]), InputSpec([1, 2])]
    with paddle.no_grad():
        outs = static_equals_eager(Exported(model), [image, *meta], spec)
    assert outs[0].shape[0] > 0  # bbox rows: a real comparison
