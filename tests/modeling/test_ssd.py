"""SSD / SSDLite: checkpoint names, matching, mining, loss, decoding, training, eval, tools.

Full-size equivalence with PaddleDetection 2.6 (same bbox/bbox_num and loss from its own
random .pdparams, MobileNetV1, VGG16 and SSDLite) is checked by bench/compare_ssd.py (needs
the reference venv).
"""

import math
import os
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.modeling.losses import SSDLoss, mine_hard_negatives, ssd_match
from ppdet.modeling.postprocess import SSDBox
from tests.conftest import ROOT
from tests.modeling.detector_checks import (
    assert_loss_drops,
    check_detections,
    check_no_detections,
    demo_overrides,
    eval_inputs,
    predict,
    run_tools,
    state_lines,
    train_steps,
)

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "tests" / "fixtures" / "compat"
DEMO = str(REPO / "configs" / "ssd" / "ssd_mobilenet_v1_demo.yml")
TINY = ["num_classes=3", "MobileNet.scale=0.25"]
SIZE = 96


@pytest.mark.parametrize(
    "config, names",
    [
        ("ssd_mobilenet_v1_300_120e_voc.yml", "ssd_mobilenet_v1_voc.txt"),
        ("ssd_vgg16_300_240e_voc.yml", "ssd_vgg16_voc.txt"),
        ("ssdlite_mobilenet_v3_large_320_coco.yml", "ssdlite_mobilenet_v3_large_coco.txt"),
    ],
)
def test_names_and_shapes_equal_paddledetection(config, names):
    model = ppdet.build_model(ppdet.load_config(str(REPO / "configs" / "ssd" / config)))
    assert state_lines(model) == (COMPAT / names).read_text().splitlines()


def tiny_model(seed=0, extra=()):
    paddle.seed(seed)
    return ppdet.build_model(ppdet.load_config(DEMO, TINY + list(extra)))


def fixed_batch():
    """2 images of SIZE x SIZE; image 0 has 2 boxes, image 1 one box and a padding row."""
    rng = np.random.default_rng(0)
    gt_bbox = np.array(
        [[[10, 12, 50, 60], [40, 30, 90, 80]], [[20, 20, 70, 60], [0, 0, 0, 0]]], "float32"
    )
    return {
        "image": paddle.to_tensor(rng.normal(0, 1, (2, 3, SIZE, SIZE)).astype("float32")),
        "im_shape": paddle.to_tensor([[SIZE, SIZE], [SIZE, SIZE]], "float32"),
        "scale_factor": paddle.to_tensor([[1.0, 1.0], [0.5, 0.5]], "float32"),
        "gt_bbox": paddle.to_tensor(gt_bbox),
        "gt_class": paddle.to_tensor([[[0], [2]], [[1], [0]]], "int32"),
        "pad_gt_mask": paddle.to_tensor([[[1], [1]], [[1], [0]]], "float32"),
    }


def test_head_output_shapes_and_prior_order():
    model = tiny_model()
    head = model.ssd_head
    assert head.anchor_generator.num_priors == [3, 6, 6, 6, 6, 6]
    assert [c.weight.shape[0] for c in head.score_convs] == [12, 24, 24, 24, 24, 24]  # P (3 + 1)
    assert head.box_convs[0].weight.shape[2:] == [1, 1]  # MobileNetV1 SSD: 1x1 predictors
    image = fixed_batch()["image"]
    feats = model.backbone(image)
    sizes = [tuple(f.shape[2:]) for f in feats]
    assert sizes == [(6, 6), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)]
    boxes, logits = head(feats)
    n = sum(h * w * p for (h, w), p in zip(sizes, head.anchor_generator.num_priors))
    assert boxes.shape == [2, n, 4] and logits.shape == [2, n, 4]
    priors = head.priors(feats, image)
    assert priors.shape == [n, 4] and float(priors.min()) >= 0 and float(priors.max()) <= 1
    # row (y * W + x) * P + p of level 0 is channel p * (C + 1) + c of its map at (y, x)
    raw = head.score_convs[0](feats[0]).numpy()  # [2, 12, 6, 6]
    y, x, p = 2, 4, 1
    np.testing.assert_allclose(
        logits.numpy()[1, (y * 6 + x) * 3 + p], raw[1, p * 4 : (p + 1) * 4, y, x], rtol=1e-6
    )
    # that prior is centred on its cell: x centre (4 + 0.5) / 6
    row = priors.numpy()[(y * 6 + x) * 3 + p]
    np.testing.assert_allclose((row[0] + row[2]) / 2, 4.5 / 6, rtol=1e-5)


def test_separable_head_layers():
    from ppdet.modeling.heads import SSDHead

    gen = {
        "steps": [8, 16],
        "aspect_ratios": [[2.0], [2.0]],
        "min_sizes": [8.0, 16.0],
        "max_sizes": [16.0, 32.0],
    }
    head = SSDHead(num_classes=2, in_channels=[8, 16], anchor_generator=gen, use_sepconv=True)
    names = sorted(head.state_dict())
    assert "boxes0.dw_conv.weight" in names and "scores1.bn._variance" in names
    assert not any(n.endswith("conv.bias") for n in names)
    assert head.state_dict()["scores1.pw_conv.weight"].shape == [4 * 3, 16, 1, 1]
    boxes, logits = head([paddle.rand([1, 8, 4, 4]), paddle.rand([1, 16, 2, 2])])
    assert boxes.shape == [1, 4 * 16 + 4 * 4, 4] and logits.shape == [1, 80, 3]


def test_matching_hand_made_boxes():
    priors = paddle.to_tensor(
        [
            [0.0, 0.0, 0.2, 0.2],  # 0: overlaps gt 0 with IoU 0.25 (its best: forced)
            [0.5, 0.5, 0.9, 0.9],  # 1: IoU 1 with gt 1
            [0.5, 0.5, 0.8, 0.9],  # 2: IoU 0.75 with gt 1 (>= 0.5: positive)
            [0.5, 0.5, 0.6, 0.9],  # 3: IoU 0.25 with gt 1: negative
            [0.0, 0.6, 0.1, 0.7],  # 4: no overlap
        ],
        "float32",
    )
    gt = paddle.to_tensor([[0.0, 0.0, 0.1, 0.1], [0.5, 0.5, 0.9, 0.9]], "float32")
    matched, positive = ssd_match(gt, priors, 0.5)
    assert positive.numpy().tolist() == [True, True, True, False, False]
    assert matched.numpy()[:3].tolist() == [0, 1, 1]
    matched, positive = ssd_match(gt[:0], priors, 0.5)  # no gt: all negative
    assert not positive.numpy().any()


def test_hard_negative_mining():
    conf = paddle.to_tensor([[0.1, 5.0, 0.3, 0.9, 0.2, 0.8, 0.05, 0.4]], "float32")
    pos = paddle.to_tensor([[False, True, False, False, False, False, False, False]])
    # 1 positive -> 3 negatives of highest loss: 0.9, 0.8, 0.4
    keep = mine_hard_negatives(conf, pos, 3.0).numpy()[0]
    assert keep.tolist() == [False, True, False, True, False, True, False, True]
    # no positive: every prior counts; many positives: capped at all priors
    none = mine_hard_negatives(conf, paddle.zeros_like(pos), 3.0).numpy()
    assert none.all()
    many = mine_hard_negatives(conf, paddle.to_tensor([[True] * 4 + [False] * 4]), 3.0).numpy()
    assert many.all()


def _numpy_ssd_loss(deltas, logits, priors, gt, cls, var=(0.1, 0.1, 0.2, 0.2), thr=0.5, ratio=3.0):
    """Reference: one image, every gt real."""
    n, bg = len(priors), logits.shape[1] - 1

    def iou(a, b):
        lt = np.maximum(a[:, None, :2], b[None, :, :2])
        rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), -1)

        def area(x):
            return (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])

        return inter / (area(a)[:, None] + area(b)[None] - inter)

    ov = iou(gt, priors)  # [M, N]
    match = ov.argmax(0)
    pos = ov.max(0) >= thr
    for g, p in enumerate(ov.argmax(1)):
        match[p], pos[p] = g, True
    label = np.where(pos, cls[match], bg)
    g = gt[match]
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = priors[:, 0] + pw / 2, priors[:, 1] + ph / 2
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    target = np.stack(
        [
            (g[:, 0] + gw / 2 - pcx) / pw / var[0],
            (g[:, 1] + gh / 2 - pcy) / ph / var[1],
            np.log(gw / pw) / var[2],
            np.log(gh / ph) / var[3],
        ],
        1,
    )
    d = np.abs(deltas - target)
    loc = (np.where(d < 1, 0.5 * d * d, d - 0.5).sum(1) * pos).sum()
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    ce = -logp[np.arange(n), label]
    num_neg = min(int(ratio * pos.sum()), n)
    neg_order = [i for i in np.argsort(-ce, kind="stable") if not pos[i]][:num_neg]
    conf = ce[pos].sum() + ce[neg_order].sum()
    return (conf + loc) / max(pos.sum(), 1), conf / max(pos.sum(), 1), loc / max(pos.sum(), 1)


def test_loss_equals_numpy_formula():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 0.7, (40, 2))
    priors = np.concatenate([xy, xy + rng.uniform(0.1, 0.3, (40, 2))], 1).astype("float32")
    gt = np.array([[0.1, 0.1, 0.4, 0.5], [0.5, 0.3, 0.9, 0.8]], "float32")
    cls = np.array([2, 0])
    deltas = rng.normal(0, 1, (40, 4)).astype("float32")
    logits = rng.normal(0, 2, (40, 4)).astype("float32")
    ref = _numpy_ssd_loss(deltas, logits, priors, gt, cls)
    out = SSDLoss()(
        paddle.to_tensor(deltas[None]),
        paddle.to_tensor(logits[None]),
        paddle.to_tensor(priors),
        paddle.to_tensor(gt[None]),
        paddle.to_tensor(cls.reshape(1, 2, 1).astype("int32")),
        paddle.to_tensor([[True, True]]),
    )
    got = [float(out[k]) for k in ("loss", "loss_conf", "loss_loc")]
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_decode_known_deltas():
    prior = paddle.to_tensor([[0.2, 0.2, 0.6, 0.4]], "float32")  # centre (0.4, 0.3), 0.4 x 0.2
    # dx = 1 -> centre x + 0.1 * 0.4; dw = 5 ln 2 -> width doubles; dy = dh = 0
    deltas = paddle.to_tensor([[[1.0, 0.0, 5 * math.log(2.0), 0.0]]], "float32")
    logits = paddle.to_tensor([[[0.0, math.log(3.0), 0.0]]], "float32")  # softmax 1/5, 3/5, 1/5
    raw = {"box_deltas": deltas, "cls_logits": logits, "priors": prior}
    meta = {
        "im_shape": paddle.to_tensor([[300.0, 300.0]]),
        "scale_factor": paddle.to_tensor([[0.75, 0.6]]),
    }  # original image 400 high, 500 wide
    boxes, scores, rois_num = SSDBox()(raw, meta)
    assert rois_num is None  # dense layout
    cx, w = 0.44, 0.8
    np.testing.assert_allclose(
        boxes.numpy()[0, 0],
        [(cx - w / 2) * 500, 0.2 * 400, (cx + w / 2) * 500, 0.4 * 400],
        rtol=1e-5,
    )
    np.testing.assert_allclose(scores.numpy()[0, :, 0], [0.2, 0.6], rtol=1e-5)  # background dropped


def test_loss_names_and_an_image_without_gt():
    model = tiny_model()
    model.train()
    batch = fixed_batch()
    losses = model.losses(batch)
    assert sorted(losses) == ["loss", "loss_conf", "loss_loc"]
    np.testing.assert_allclose(
        float(losses["loss"]), float(losses["loss_conf"] + losses["loss_loc"]), rtol=1e-6
    )
    batch["pad_gt_mask"] = paddle.zeros_like(batch["pad_gt_mask"])  # no real boxes at all
    losses = model.losses(batch)
    assert float(losses["loss_loc"]) == 0 and 0 < float(losses["loss_conf"]) < 1e6
    losses["loss"].backward()


def test_training_steps_lower_the_loss():
    model = tiny_model()
    assert_loss_drops(train_steps(model, fixed_batch(), steps=8)["loss"])


def test_eval_output_format_and_no_detections():
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.0"])
    batch = eval_inputs(fixed_batch())
    out = predict(model, batch)
    bbox = check_detections(out, [200, 200], num_classes=3)
    n_priors = 6 * 6 * 3 + 9 * 6 + 4 * 6 + 3 * 6
    assert bbox.shape == (400, 6) and (bbox[:, 1] > 0).all()
    assert n_priors * 3 > 200  # keep_top_k decides
    # image 1 was downscaled by 2: its boxes are in the twice larger original image
    assert np.abs(bbox[200:, 2:]).max() > SIZE
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.99"])
    out = predict(model, batch)
    check_no_detections(out, 2)


def test_tools_train_eval_infer(tiny_demo_data, tmp_path):
    opts = demo_overrides(tiny_demo_data, tmp_path / "out", fmt="voc", size=96) + [
        "MobileNet.scale=0.25",
        "BBoxPostProcess.nms.score_threshold=0.0",
    ]
    out = run_tools(DEMO, opts, tiny_demo_data, tmp_path, "ssd_mobilenet_v1_demo")
    assert "loss_conf" in out["train"] and "loss_loc" in out["train"]
    assert "mAP" in out["eval"]


def test_the_seed_legacy_ssd_tarball_fits_the_v01_config_with_relu_extra_blocks(tmp_path):
    """The seed zoo's ssd_mobilenet_v1_voc.tar (v0.1 variable files) fits the v0.1 config's
    parameters exactly and loads strictly, as its extra blocks use ReLU like v0.1's
    (bench/compare_legacy.py: all of v0.1's detections); with ReLU6 (2.x) a strict load is
    refused, naming the behaviour."""
    from ppdet.checkpoint import WeightsError
    from ppdet.zoo.legacy import legacy_shapes, write_legacy_tar
    from ppdet.zoo.weights import load_weights

    config = os.path.join(ROOT, "configs/ssd/ssd_mobilenet_v1_voc.yml")
    model = ppdet.build_model(ppdet.load_config(config))
    shapes = legacy_shapes(
        "ssd_mobilenet_v1_voc", {k: tuple(v.shape) for k, v in model.state_dict().items()}
    )
    rng = np.random.default_rng(0)
    path = str(tmp_path / "ssd_mobilenet_v1_voc.tar")
    write_legacy_tar({n: rng.standard_normal(s).astype("float32") for n, s in shapes.items()}, path)
    report = load_weights(model, path, strict=True)
    assert len(report.loaded) == 199
    assert not report.missing and not report.mismatched and not report.unused
    relu6 = ppdet.build_model(ppdet.load_config(config, ["MobileNet.extra_block_act=relu6"]))
    with pytest.raises(WeightsError, match="extra_block_act='relu' \\(model: 'relu6'\\)"):
        load_weights(relu6, path, strict=True)
