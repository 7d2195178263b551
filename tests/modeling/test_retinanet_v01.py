"""RetinaNet with PaddleDetection v0.1's conventions: fluid's retinanet_detection_output
(hand values, the numpy replay that reproduces v0.1's detections, a batch, a static graph), P6
from C5, and the v0.1 configs declaring every behaviour the v0.1 checkpoints need.

Against v0.1 itself (genuine v0.1 tarball, v0.1's detections): bench/compare_legacy.py.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddle.static import InputSpec

import ppdet
from bench.legacy_replay import retinanet_detection_output
from ppdet.modeling.anchors import RetinaAnchorGenerator
from ppdet.modeling.conventions import ConventionError, missing_conventions, model_conventions
from ppdet.modeling.heads import RetinaHead
from ppdet.modeling.necks import FPN
from ppdet.modeling.postprocess import RetinaNetDetectionOutput, flatten_level
from ppdet.zoo.legacy_families import RETINANET
from ppdet.zoo.legacy_rules import Arch
from tests.modeling.detector_checks import tiny_detector
from tests.modeling.test_static_graph import Exported, static_equals_eager

REPO = Path(__file__).resolve().parents[2]
T = paddle.to_tensor


def logit(p):
    return np.log(np.asarray(p, np.float32) / (1 - np.asarray(p, np.float32)))


def _sorted(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32).reshape(-1, 6)
    return rows[np.lexsort(rows.T[::-1])]


def test_detection_output_by_hand():
    """Two levels, 2 classes, one image at scale 2 (padded input 20 x 20): +1 decoding, /scale,
    clipped to round(20 / 2) - 1; +1 NMS; the last level's threshold is 0."""
    # level 0: 1 x 2 grid, 1 anchor per location: logits [1, A*C = 2, 1, 2]
    p0 = np.array([[0.9, 0.01], [0.8, 0.3]], np.float32)  # [location, class]
    logits0 = logit(p0).T.reshape(1, 2, 1, 2)
    p1 = np.array([[0.02, 0.01]], np.float32)  # level 1: one location
    logits1 = logit(p1).T.reshape(1, 2, 1, 1)
    raw = {
        "cls_logits": [T(logits0), T(logits1)],
        "bbox_deltas": [
            T(np.zeros((1, 4, 1, 2), np.float32)),
            T(np.array([0, 0, math.log(2), 0], np.float32).reshape(1, 4, 1, 1)),
        ],
        "anchors": [T([[0.0, 0, 9, 9], [1, 0, 10, 9]]), T([[0.0, 0, 19, 19]])],
        "input_size": T([20, 20]),
    }
    meta = {"scale_factor": T([[2.0, 2.0]]), "im_shape": T([[20.0, 20.0]])}
    bbox, num = RetinaNetDetectionOutput(num_classes=2)(raw, meta)
    # class 0: the two level-0 boxes overlap with +1 IoU 90 / 110 > 0.5: only the 0.9 one;
    # level 1: w 40 around centre 10: x -10..29 -> /2 -> -5..14.5 -> clipped to 0..9
    expected = [
        [0, 0.9, 0, 0, 4.5, 4.5],
        [1, 0.3, 0.5, 0, 5, 4.5],
        [0, 0.02, 0, 0, 9, 9],
        [1, 0.01, 0, 0, 9, 9],
    ]
    np.testing.assert_allclose(_sorted(bbox.numpy()), _sorted(expected), rtol=1e-5, atol=1e-6)
    assert num.numpy().tolist() == [4]
    # keep_top_k and the threshold of the finer levels
    out, num = RetinaNetDetectionOutput(num_classes=2, score_threshold=0.5, keep_top_k=2)(raw, meta)
    np.testing.assert_allclose(out.numpy()[:, 1], [0.9, 0.02], rtol=1e-5)
    assert num.numpy().tolist() == [2]


def _random_raw(rng, batch: int, grids, num_classes: int, gen):
    cls_logits, deltas = [], []
    for h, w in grids:
        cls_logits.append(rng.normal(-3, 1.5, (batch, 9 * num_classes, h, w)).astype("float32"))
        deltas.append(rng.normal(0, 0.5, (batch, 36, h, w)).astype("float32"))
    anchors = gen(grids)
    return cls_logits, deltas, anchors


def test_detection_output_equals_the_fluid_replay_per_image():
    """A batch of two images (other scales) against ``bench.legacy_replay``'s
    retinanet_detection_output (which gives v0.1's detections 300/300), image by image."""
    rng = np.random.default_rng(0)
    gen = RetinaAnchorGenerator(offset=0.5, fluid=True)
    grids = [(16, 12), (8, 6), (4, 3), (2, 2), (1, 1)]  # a 128 x 96 padded input
    num_classes = 4
    logits, deltas, anchors = _random_raw(rng, 2, grids, num_classes, gen)
    scale = np.array([[0.8, 0.8], [1.5, 1.5]], np.float32)
    raw = {
        "cls_logits": [T(x) for x in logits],
        "bbox_deltas": [T(x) for x in deltas],
        "anchors": anchors,
        "input_size": T([128, 96]),
    }
    post = RetinaNetDetectionOutput(num_classes, nms_top_k=50, keep_top_k=40)
    bbox, num = post(raw, {"scale_factor": T(scale)})
    bbox, num = bbox.numpy(), num.numpy()
    assert num.tolist() == [40, 40]
    start = 0
    for b in range(2):
        s = [
            paddle.nn.functional.sigmoid(flatten_level(T(x[b : b + 1]), num_classes)).numpy()[0]
            for x in logits
        ]
        d = [flatten_level(T(x[b : b + 1]), 4).numpy()[0] for x in deltas]
        a = [x.numpy() for x in anchors]
        info = np.array([128, 96, scale[b, 0]], np.float32)
        ref = retinanet_detection_output(s, d, a, info, 0.05, 0.5, 50, 40)
        ours = bbox[start : start + num[b]]
        start += num[b]
        np.testing.assert_allclose(_sorted(ours), _sorted(ref), rtol=1e-5, atol=1e-4)


def test_detection_output_traces_with_the_network():
    overrides = [
        "num_classes=3",
        "FPN.out_channel=16",
        "FPN.use_c5=true",
        "RetinaHead.anchor_generator.fluid=true",
        "RetinaHead.anchor_generator.offset=0.5",
        "RetinaHead.box_coder_plus_one=true",
        "RetinaNet.post_process=RetinaNetDetectionOutput",
        "RetinaNetDetectionOutput.score_threshold=0.0",
    ]
    config = str(REPO / "configs" / "retinanet" / "retinanet_r18_fpn_demo.yml")
    model = tiny_detector(config, overrides)
    model.eval()
    assert isinstance(model.post_process, RetinaNetDetectionOutput)
    rng = np.random.default_rng(0)
    image = T(rng.normal(size=(1, 3, 128, 160)).astype("float32"))
    meta = [T([[120.0, 150.0]]), T([[0.5, 0.5]])]
    spec = [InputSpec([1, 3, -1, -1]), InputSpec([1, 2]), InputSpec([1, 2])]
    with paddle.no_grad():
        outs = static_equals_eager(Exported(model), [image, *meta], spec)
    bbox = outs[0].numpy()
    assert bbox.shape[0] > 0
    # clipped to the padded input in original pixels: round(160 / 0.5) - 1, round(128 / 0.5) - 1
    assert bbox[:, 2:].min() >= 0 and bbox[:, [2, 4]].max() <= 319 and bbox[:, [3, 5]].max() <= 255


def test_fpn_declares_where_p6_comes_from():
    assert FPN([8, 16, 32], 8, [1 / 8, 1 / 16, 1 / 32], True, 2, use_c5=True).conventions == {
        "fpn_use_c5": True
    }
    assert FPN([8, 16, 32], 8, [1 / 8, 1 / 16, 1 / 32], True, 2, use_c5=False).conventions == {
        "fpn_use_c5": False
    }
    assert FPN([8, 16, 32, 64], 8).conventions == {}  # R-CNN: a max-pooled P6


@pytest.mark.parametrize(
    "config, depth", [("retinanet_r50_fpn_1x.yml", 50), ("retinanet_r101_fpn_1x.yml", 101)]
)
def test_v01_configs_run_every_behaviour_their_checkpoints_need(config, depth):
    cfg = ppdet.load_config(str(REPO / "configs" / config))
    model = ppdet.build_model(cfg)
    needed = RETINANET.behaviour(Arch("retinanet", depth=depth, fpn=True))
    declared = model_conventions(model)
    assert missing_conventions(needed, declared) == []
    # and, for training, fluid's retinanet_target_assign and fg_num (weights never require them)
    assert declared == {
        **needed,
        "anchor_target_assign": "fluid",
        "retina_num_pos_plus_one": True,
    }
    assert model.neck.state_dict()["fpn_6.weight"].shape == [256, 2048, 3, 3]  # P6 from C5
    # the 2.x config runs none of them
    plain = ppdet.build_model(
        ppdet.load_config(str(REPO / "configs" / "retinanet" / "retinanet_r50_fpn_1x_coco.yml"))
    )
    assert missing_conventions(needed, model_conventions(plain)) == [
        "fpn_use_c5=True (model: False)",
        "box_coder_plus_one=True (model: False)",
        "anchor_rounding='fluid' (not declared)",
        "retina_detection_output='fluid' (not declared)",
    ]


def test_head_and_post_process_agree_on_the_box_coding():
    config = str(REPO / "configs" / "retinanet" / "retinanet_r18_fpn_demo.yml")
    with pytest.raises(ConventionError, match="box_coder_plus_one"):
        tiny_detector(config, ["RetinaNet.post_process=RetinaNetDetectionOutput"])


@pytest.mark.parametrize("plus_one, dw", [(True, math.log(20 / 10)), (False, math.log(19 / 9))])
def test_regression_targets_with_fluids_plus_one(plus_one, dw):
    """An anchor 0..9 (fluid width 10) matched to a gt box 0..19 x 0..9: dw = log(20 / 10) with
    +1 widths, log(19 / 9) without; the centre moves by 5 / 10 or 5 / 9."""
    head = RetinaHead(
        num_classes=2,
        anchor_generator={"name": "AnchorGenerator", "anchor_sizes": [8], "strides": [8]},
        in_channels=[8],
        conv_feat=None,
        box_coder_plus_one=plus_one,
    )
    assert head.conventions == {"box_coder_plus_one": plus_one}
    anchors = T([[0.0, 0, 9, 9], [40, 40, 49, 49]])
    batch = {
        "gt_bbox": T([[[0.0, 0, 19, 9]]]),
        "gt_class": T([[[1]]], "int32"),
        "pad_gt_mask": T([[[1.0]]]),
    }
    _, gt_of, labels = head._targets(anchors, batch, 1)
    assert labels.numpy().tolist() == [[1, 0]]
    dx = 5 / 10 if plus_one else 5 / 9
    # the head's box loss is zero exactly at the deltas of its convention
    exact = T([[dx, 0, dw, 0]])
    other = T([[5 / 9, 0, math.log(19 / 9), 0]] if plus_one else [[5 / 10, 0, math.log(2), 0]])
    loss = functools.partial(
        head.box_loss.per_anchor,
        anchors=anchors[:1],
        gt_boxes=gt_of[0, :1],
        weights=head.weights,
        plus_one=head.box_coder_plus_one,
    )
    np.testing.assert_allclose(loss(exact).numpy(), [0.0], atol=1e-6)
    assert loss(other).numpy()[0] > 1e-3


def test_v01_conventions_train_and_predict():
    """The demo model with every v0.1 convention: a few steps lower the loss, then predict
    gives detections inside the clip window."""
    from tests.modeling.detector_checks import assert_loss_drops, train_steps
    from tests.modeling.test_retinanet import TINY, fixed_batch

    overrides = [
        *TINY,
        "ResNet.freeze_at=-1",
        "FPN.use_c5=true",
        "RetinaHead.anchor_generator.fluid=true",
        "RetinaHead.anchor_generator.offset=0.5",
        "RetinaHead.box_coder_plus_one=true",
        "RetinaNet.post_process=RetinaNetDetectionOutput",
        "RetinaNetDetectionOutput.score_threshold=0.0",
    ]
    config = str(REPO / "configs" / "retinanet" / "retinanet_r18_fpn_demo.yml")
    model = tiny_detector(config, overrides)
    batch = fixed_batch()
    assert_loss_drops(train_steps(model, batch, steps=8)["loss"])
    model.eval()
    out = model.predict({k: batch[k] for k in ("image", "im_shape", "scale_factor")})
    assert out["bbox_num"].numpy().tolist() == [100, 100]
    bbox = out["bbox"].numpy()
    assert bbox[:100, 2:].max() <= 95 and bbox[100:, 2:].max() <= 191  # round(96 / s) - 1
