"""Mask R-CNN: checkpoint names, mask targets from hand-made polygons, paste-back, losses, a few
training steps, eval output (with and without detections), tools.

Full-size equivalence with PaddleDetection 2.6 (same detections, the same pasted masks and the
same six losses from its own random .pdparams, FPN and C4) is checked by
bench/compare_mask_rcnn.py.
"""

from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppdet
from ppdet.evaluation.coco_eval import split_masks
from ppdet.modeling.assigners import MaskAssigner, polygons_to_mask
from ppdet.modeling.heads.mask_head import MaskFeat, MaskHead
from ppdet.modeling.postprocess import paste_masks
from tests.modeling.detector_checks import (
    assert_loss_drops,
    check_no_detections,
    demo_overrides,
    eval_inputs,
    predict,
    rcnn_batch,
    run_tools,
    state_lines,
    tiny_detector,
    train_steps,
)

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "tests" / "fixtures" / "compat"
DEMO = str(REPO / "configs" / "mask_rcnn" / "mask_rcnn_r18_fpn_demo.yml")
TINY = [
    "num_classes=3",
    "FPN.out_channel=32",
    "TwoFCHead.out_channel=64",
    "MaskFeat.out_channel=16",
    "MaskFeat.num_convs=2",
    "BBoxAssigner.batch_size_per_im=64",
]
SIZE = 96
T = paddle.to_tensor


@pytest.mark.parametrize(
    "config, names",
    [
        ("mask_rcnn_r50_fpn_1x_coco.yml", "mask_rcnn_r50_fpn.txt"),
        ("mask_rcnn_r50_fpn_2x_coco.yml", "mask_rcnn_r50_fpn.txt"),
        ("mask_rcnn_r50_1x_coco.yml", "mask_rcnn_r50.txt"),
        ("mask_rcnn_r50_2x_coco.yml", "mask_rcnn_r50.txt"),
        ("mask_rcnn_r50_vd_fpn_2x_coco.yml", "mask_rcnn_r50_vd_fpn.txt"),
        ("mask_rcnn_r101_fpn_1x_coco.yml", "mask_rcnn_r101_fpn.txt"),
        ("mask_rcnn_x101_vd_64x4d_fpn_1x_coco.yml", "mask_rcnn_x101_vd_64x4d_fpn.txt"),
    ],
)
def test_names_and_shapes_equal_paddledetection(config, names):
    cfg = ppdet.load_config(str(REPO / "configs" / "mask_rcnn" / config))
    assert cfg["TrainDataset"]["load_segm"] is True
    with paddle.LazyGuard():
        model = ppdet.build_model(cfg)
    assert state_lines(model) == (COMPAT / names).read_text().splitlines()


def test_polygons_to_mask_hand_rasterised():
    # box 28 px wide at 28x28: one pixel per cell; the polygon covers the box's left half
    rect = [np.array([10, 20, 24, 20, 24, 48, 10, 48], "float32")]
    expected = np.zeros((28, 28), "uint8")
    expected[:, :14] = 1
    np.testing.assert_array_equal(polygons_to_mask(rect, np.array([10, 20, 38, 48]), 28), expected)
    # a 56 px box: coordinates halve
    rect = [np.array([0, 0, 28, 0, 28, 56, 0, 56], "float32")]
    np.testing.assert_array_equal(polygons_to_mask(rect, np.array([0, 0, 56, 56]), 28), expected)
    # triangle x + y < 28: a pixel is in when its centre is, i + j + 1 < 28
    tri = [np.array([0, 0, 28, 0, 0, 28], "float32")]
    i, j = np.mgrid[:28, :28]
    np.testing.assert_array_equal(polygons_to_mask(tri, np.array([0, 0, 28, 28]), 28), i + j <= 26)
    # two polygons of one object: their union; a polygon outside the box adds nothing
    two = [
        np.array([0, 0, 14, 0, 14, 14, 0, 14], "float32"),
        np.array([14, 14, 28, 14, 28, 28, 14, 28], "float32"),
        np.array([40, 40, 50, 40, 50, 50], "float32"),
    ]
    expected = np.zeros((14, 14), "uint8")
    expected[:7, :7] = expected[7:, 7:] = 1  # 28 px box at 14x14: 2 px per cell
    np.testing.assert_array_equal(polygons_to_mask(two, np.array([0, 0, 28, 28]), 14), expected)


def test_mask_assigner_rasterises_each_roi_with_its_gt():
    gt_boxes = [T([[0, 0, 28, 28], [40, 40, 68, 68]], "float32"), T(np.zeros((0, 4)), "float32")]
    polys = [
        [
            [np.array([0, 0, 14, 0, 14, 28, 0, 28], "float32")],  # left half of gt 0
            [np.array([40, 40, 68, 40, 68, 54, 40, 54], "float32")],
        ],  # top half of gt 1
        [],
    ]
    # the foreground RoIs: two of image 0 (matching gt 1, then gt 0), none of image 1
    rois = T([[40, 40, 68, 68], [0, 0, 28, 28]], "float32")
    targets = MaskAssigner(14, num_classes=3)(rois, T([2, 0], "int32"), gt_boxes, polys)
    top, left = np.zeros((14, 14), "float32"), np.zeros((14, 14), "float32")
    top[:7], left[:, :7] = 1, 1
    np.testing.assert_array_equal(targets.numpy(), np.stack([top, left]))
    # no foreground RoI anywhere: no targets
    targets = MaskAssigner(14, 3)(paddle.zeros([0, 4]), T([0], "int32"), gt_boxes[1:], polys[1:])
    assert targets.shape == [0, 14, 14]


def paste(masks, boxes, h, w):
    """One image's masks pasted with ``paste_masks`` (NumPy in and out)."""
    out = paste_masks(
        T(masks, "float32"), T(boxes, "float32"), T([len(masks)], "int32"), T([[h, w]], "int32")
    )
    return out.numpy()


def test_paste_masks_known_and_against_grid_sample():
    ones = np.ones((1, 28, 28))
    out = paste(ones, np.array([[10, 20, 30, 40]]), 50, 60)
    expected = np.zeros((1, 50, 60), "uint8")
    expected[0, 20:40, 10:30] = 1
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    half = np.zeros((1, 28, 28))
    half[0, :, :14] = 1
    expected = np.zeros((1, 28, 28), "uint8")
    expected[0, :, :14] = 1
    np.testing.assert_array_equal(paste(half, np.array([[0, 0, 28, 28]]), 28, 28), expected)
    # arbitrary boxes: Paddle's grid_sample (bilinear, align_corners False, zero padding)
    rng = np.random.default_rng(0)
    masks = rng.uniform(0, 1, (3, 28, 28))
    boxes = np.array([[3.3, 5.7, 40.2, 30.1], [0, 0, 64, 48], [50.5, 40.2, 70, 47.9]])
    h, w = 48, 64
    ys, xs = np.mgrid[:h, :w] + 0.5
    grid = np.stack(
        [
            np.stack([(xs - b[0]) / (b[2] - b[0]) * 2 - 1, (ys - b[1]) / (b[3] - b[1]) * 2 - 1], -1)
            for b in boxes
        ]
    )
    ref = F.grid_sample(
        T(masks[:, None], "float32"), T(grid, "float32"), align_corners=False
    ).numpy()[:, 0]
    ours = paste(masks, boxes, h, w)
    assert ((ref >= 0.5) != ours).sum() <= 2  # rounding at the threshold only
    assert paste(np.zeros((0, 28, 28)), np.zeros((0, 4)), h, w).shape == (0, h, w)
    # two images: all rows at the larger size, each zero outside its own image (20 x 30)
    out = paste_masks(
        T(np.ones((3, 28, 28)), "float32"),
        T([[0, 0, 64, 48], [10, 5, 60, 40], [0, 0, 30, 20]], "float32"),
        T([2, 1], "int32"),
        T([[48, 64], [20, 30]], "int32"),
    ).numpy()
    assert out.shape == (3, 48, 64) and out.dtype == np.uint8
    expected = np.zeros((3, 48, 64), "uint8")
    expected[0] = 1
    expected[1, 5:40, 10:60] = 1
    expected[2, :20, :30] = 1
    np.testing.assert_array_equal(out, expected)
    # a box running past its (smaller) image is cut at the image border
    out = paste_masks(
        T(np.ones((2, 28, 28)), "float32"),
        T([[0, 0, 64, 48], [0, 0, 64, 48]], "float32"),
        T([1, 1], "int32"),
        T([[48, 64], [20, 30]], "int32"),
    ).numpy()
    assert out[1, :20, :30].all() and out[1].sum() == 20 * 30


def test_mask_head_loss_is_own_class_bce_over_pixels():
    """loss_mask = mean over F x M x M of BCE(own-class logits, target), checked in NumPy."""
    paddle.seed(0)
    head = MaskHead(
        MaskFeat(in_channel=4, out_channel=4, num_convs=1),
        {"resolution": 4},
        MaskAssigner(8, num_classes=3),
        num_classes=3,
        spatial_scales=[0.25],
    )
    feats = [T(np.random.default_rng(0).normal(size=(1, 4, 16, 16)), "float32")]
    gt = [T([[0, 0, 32, 32], [32, 32, 64, 64]], "float32")]
    polys = [
        [
            [np.array([0, 0, 32, 0, 0, 32], "float32")],
            [np.array([32, 32, 64, 32, 64, 48, 32, 48], "float32")],
        ]
    ]
    sample = {
        "rois": T([[0, 0, 32, 32], [10, 40, 20, 60], [32, 32, 64, 64]], "float32"),
        "rois_num": T([3], "int32"),
        "labels": T([1, 3, 2], "int32"),  # the second is background
    }
    raw = head(feats, sample)
    assert raw["rois_num"].numpy().tolist() == [2] and raw["logits"].shape == [2, 8, 8]
    loss = float(head.get_loss(raw, gt, polys)["loss_mask"])
    fg = T([[0, 0, 32, 32], [32, 32, 64, 64]], "float32")
    logits = head.mask_fcn_logits(head.head(head.roi_extractor(feats, fg, T([2], "int32")))).numpy()
    x = np.stack([logits[0, 1], logits[1, 2]])  # [2, 8, 8] own class
    i, j = np.mgrid[:8, :8]
    y = np.stack([i + j <= 6, i < 4]).astype("float64")
    bce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    np.testing.assert_allclose(loss, bce.mean(), rtol=1e-5)


def tiny_model(seed=0, extra=()):
    return tiny_detector(DEMO, TINY + list(extra), seed)


def fixed_batch():
    batch = rcnn_batch(SIZE)
    batch["gt_poly"] = [
        [
            [np.array([10, 10, 50, 10, 30, 60], "float32")],
            [
                np.array([40, 30, 90, 30, 90, 90, 40, 90], "float32"),
                np.array([45, 35, 60, 35, 50, 50], "float32"),
            ],
        ],
        [[np.array([5, 70, 22, 50, 40, 70, 22, 90], "float32")]],
    ]
    return batch


NAMES = ["loss", "loss_bbox_cls", "loss_bbox_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_reg"]


def test_loss_names_and_no_foreground():
    model = tiny_model()
    model.train()
    batch = fixed_batch()
    losses = model.losses(batch)
    assert sorted(losses) == NAMES and all(np.isfinite(float(v)) for v in losses.values())
    np.testing.assert_allclose(
        float(losses["loss"]), sum(float(losses[k]) for k in NAMES[1:]), rtol=1e-6
    )
    assert float(losses["loss_mask"]) > 0
    batch["pad_gt_mask"] = paddle.zeros_like(batch["pad_gt_mask"])  # no real boxes: no mask target
    losses = model.losses(batch)
    assert float(losses["loss_mask"]) == 0
    losses["loss"].backward()
    with pytest.raises(KeyError, match="gt_poly"):
        model.losses({k: v for k, v in fixed_batch().items() if k != "gt_poly"})


def test_training_steps_lower_the_mask_loss():
    model = tiny_model(extra=["ResNet.freeze_at=-1"])
    history = train_steps(model, fixed_batch(), steps=6, lr=2e-3, keys=("loss", "loss_mask"))
    assert_loss_drops(history["loss"])
    assert history["loss_mask"][-1] < history["loss_mask"][0], history


def test_eval_output_format_and_no_detections():
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.0"])  # untrained: keep all
    batch = eval_inputs(fixed_batch())
    out = predict(model, batch)
    num = out["bbox_num"].numpy()
    assert num.tolist() == [100, 100] and out["bbox"].shape == [200, 6]
    # one tensor at the larger original size; image 0 (96 x 96) is zero beyond its own size
    assert out["mask"].shape == [200, 2 * SIZE, 2 * SIZE] and out["mask"].dtype == paddle.uint8
    assert (
        not out["mask"].numpy()[:100, SIZE:].any() and not out["mask"].numpy()[:100, :, SIZE:].any()
    )
    masks = split_masks(out["mask"], num, [[SIZE, SIZE], [2 * SIZE, 2 * SIZE]])
    assert [m.shape for m in masks] == [(100, SIZE, SIZE), (100, 2 * SIZE, 2 * SIZE)]
    assert all(m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in masks)
    # a mask stays near its box (at most one mask cell outside)
    bbox = out["bbox"].numpy()
    for m, b in zip(masks[1], bbox[100:]):
        ys, xs = np.nonzero(m)
        if len(xs):
            cell = (b[4] - b[2]) / 28 + 1
            assert xs.min() >= b[2] - cell and xs.max() <= b[4] + cell
    model = tiny_model(extra=["BBoxPostProcess.nms.score_threshold=0.99"])
    out = predict(model, batch)
    check_no_detections(out, 2)
    assert out["mask"].shape == [0, 2 * SIZE, 2 * SIZE] and out["mask"].dtype == paddle.uint8


def test_tools_train_eval_infer(tiny_demo_data, tmp_path):
    opts = demo_overrides(tiny_demo_data, tmp_path / "out") + [
        "FPN.out_channel=16",
        "TwoFCHead.out_channel=32",
        "MaskFeat.out_channel=16",
        "MaskFeat.num_convs=1",
        "BBoxPostProcess.nms.score_threshold=0.0",
        "BBoxPostProcess.nms.keep_top_k=20",
    ]
    out = run_tools(DEMO, opts, tiny_demo_data, tmp_path, "mask_rcnn_r18_fpn_demo")
    assert "loss_mask" in out["train"]
    assert "AP@[.5:.95]" in out["eval"]
