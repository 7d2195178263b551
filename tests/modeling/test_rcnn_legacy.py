"""The R-CNN family's fluid-era (PaddleDetection v0.1) conventions, each a config choice:
checked against Paddle's legacy kernels (``box_coder``, ``generate_proposals``,
``roi_align(aligned=False)``) or hand-computed values on tiny inputs."""

from __future__ import annotations

import os

import numpy as np
import paddle
import pytest
from paddle.vision import ops as vops

from ppdet.modeling.anchors.anchor_generator import fluid_cell_anchors
from ppdet.modeling.heads.bbox_head import Res5Head, RoIAlign
from ppdet.modeling.heads.cascade_head import refine_rois
from ppdet.modeling.heads.proposal_generator import ProposalGenerator
from ppdet.modeling.heads.rpn_anchors import FluidAnchorGenerator
from ppdet.modeling.postprocess.mask import MaskPostProcess, paste_masks
from ppdet.modeling.postprocess.rcnn import RCNNBox
from ppdet.ops.nms import multiclass_nms
from ppdet.ops.roi import distribute_fpn_proposals

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def t(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


# ---------------------------------------------------------------- anchors


def cells_of_location_0(sizes, ratios, stride=16.0, offset=0.5):
    """fluid's anchors of location (0, 0): the cells plus the centre offset (t - 1)."""
    return fluid_cell_anchors(sizes, ratios, stride).numpy() + offset * (stride - 1)


def test_fluid_anchor_of_one_cell_by_hand():
    # stride 16, size 32, ratio 0.5: base w = round(sqrt(256 / 0.5)) = round(22.63) = 23,
    # base h = round(23 * 0.5) = round(11.5) = 12 (C round), scaled by 32 / 16: 46 x 24;
    # centre 0.5 * (16 - 1) = 7.5; corners 7.5 -+ (46 - 1) / 2, 7.5 -+ (24 - 1) / 2
    cells = cells_of_location_0([32.0], [0.5, 1.0, 2.0])
    np.testing.assert_allclose(cells[0], [-15.0, -4.0, 30.0, 19.0])
    # ratio 1: 16 x 16 -> 32 x 32; ratio 2: round(11.31) = 11, round(22) = 22 -> 22 x 44
    np.testing.assert_allclose(cells[1], [-8.0, -8.0, 23.0, 23.0])
    np.testing.assert_allclose(cells[2], [-3.0, -14.0, 18.0, 29.0])


def test_fluid_anchors_grid_and_order_are_2x():
    gen = FluidAnchorGenerator([32.0, 64.0], [0.5, 1.0, 2.0], [16.0])
    (anchors,) = gen([(2, 3)])  # H = 2, W = 3
    assert anchors.shape == [2 * 3 * 6, 4] and gen.num_anchors == 6
    grid = anchors.numpy().reshape(2, 3, 6, 4)
    # index (y * W + x) * A + size_i * 3 + ratio_i; location (x, y) shifts by 16 px per cell
    np.testing.assert_allclose(grid[1, 2, 0], [-15.0 + 32, -4.0 + 16, 30.0 + 32, 19.0 + 16])
    cells64 = cells_of_location_0([64.0], [0.5, 1.0, 2.0])
    np.testing.assert_allclose(grid[0, 0, 3:], cells64)
    assert gen.conventions == {"anchor_rounding": "fluid"}


# ---------------------------------------------------------------- proposals


def _one_anchor_level(delta):
    score = t(np.full((1, 1, 1, 1), 5.0))  # [B, A, H, W]
    deltas = t(np.asarray(delta, np.float32).reshape(1, 4, 1, 1))
    anchors = [t([[0.0, 0.0, 9.0, 9.0]])]
    return [score], [deltas], anchors


def test_proposals_with_the_pixel_offset_by_hand():
    scores, deltas, anchors = _one_anchor_level([0.1, 0.0, 0.0, 0.0])
    window = t([[20.0, 20.0]])
    legacy = ProposalGenerator(1, 1, 0.7, 0.0, pixel_offset=True)
    rois, num = legacy(scores, deltas, anchors, window)
    # +1: w = 10, centre 0 + 5 = 5 -> 6; x1 = 6 - 5 = 1, x2 = 6 + 5 - 1 = 10
    np.testing.assert_allclose(rois.numpy(), [[1.0, 0.0, 10.0, 9.0]], atol=1e-5)
    rois, _ = ProposalGenerator(1, 1, 0.7, 0.0)(scores, deltas, anchors, window)
    # 2.x: w = 9, centre 4.5 -> 5.4; 5.4 -+ 4.5
    np.testing.assert_allclose(rois.numpy(), [[0.9, 0.0, 9.9, 9.0]], atol=1e-5)
    # clipping: the legacy window is (w - 1, h - 1) of the given size
    scores, deltas, anchors = _one_anchor_level([1.0, 1.0, 0.0, 0.0])
    rois, _ = legacy(scores, deltas, anchors, window)
    np.testing.assert_allclose(rois.numpy(), [[10.0, 10.0, 19.0, 19.0]], atol=1e-5)


def test_rpn_head_clips_legacy_proposals_to_the_padded_input():
    from ppdet.modeling.heads.rpn_head import RPNHead

    spec = dict(pre_nms_top_n=50, post_nms_top_n=50, pixel_offset=True, min_size=0.0)
    head = RPNHead(
        anchor_generator={"name": "FluidAnchorGenerator", "anchor_sizes": [64.0], "strides": [16]},
        train_proposal=spec,
        test_proposal=spec,
        in_channels=[4],
    )
    head.eval()
    assert head.conventions == {"anchor_rounding": "fluid", "pixel_offset": True}
    feats = [paddle.rand([1, 4, 4, 6])]
    im_shape = t([[50.0, 70.0]])
    rois = head(feats, im_shape, t([[64.0, 96.0]]))["rois"].numpy()
    assert rois[:, 2].max() <= 95.0 and rois[:, 3].max() <= 63.0
    assert rois[:, 2].max() > 70.0  # beyond the unpadded image: v0.1 clipped to the padded one
    with pytest.raises(ValueError, match="im_info"):
        head(feats, im_shape)
    with pytest.raises(ValueError, match="agree on pixel_offset"):
        RPNHead(train_proposal=spec, test_proposal={}, in_channels=[4])


# ---------------------------------------------------------------- RoI features


def test_fpn_level_from_the_plus_one_size():
    rois = t([[0.0, 0.0, 223.0, 223.0]])  # 223 px wide; 224 with +1: the refer level 4
    num = t([1], "int32")
    by_2x, _, _ = distribute_fpn_proposals(rois, num, 2, 5, 4, 224)
    by_v01, _, _ = distribute_fpn_proposals(rois, num, 2, 5, 4, 224, pixel_offset=True)
    assert [r.shape[0] for r in by_2x] == [0, 1, 0, 0]
    assert [r.shape[0] for r in by_v01] == [0, 0, 1, 0]


def test_unaligned_roi_align_is_the_aligned_one_half_a_pixel_later():
    feat = paddle.rand([1, 2, 12, 12])
    num = t([1], "int32")
    box = np.asarray([[1.0, 2.0, 7.0, 9.0]], np.float32)
    ext = RoIAlign(resolution=3, spatial_scale=[1.0], sampling_ratio=2, aligned=False)
    unaligned = ext([feat], t(box), num)
    aligned = RoIAlign(resolution=3, spatial_scale=[1.0], sampling_ratio=2, aligned=True)
    shifted = aligned([feat], t(box + 0.5), num)
    np.testing.assert_allclose(unaligned.numpy(), shifted.numpy(), atol=1e-6)
    np.testing.assert_allclose(
        unaligned.numpy(), vops.roi_align(feat, t(box), num, 3, 1.0, 2, aligned=False).numpy()
    )
    assert ext.conventions == {"roi_align_aligned": False}
    pyramid = RoIAlign(spatial_scale=[0.25, 0.125], aligned=False, pixel_offset=True)
    assert pyramid.conventions == {
        "roi_align_aligned": False,
        "distribute_fpn_pixel_offset": True,
    }
    assert RoIAlign(spatial_scale=[0.25, 0.125], aligned=True).conventions == {}


def test_res5_head_with_the_pooled_shortcut():
    paddle.seed(0)
    plain = Res5Head(in_channel=8)
    pooled = Res5Head(in_channel=8, shortcut_avgpool=True)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in pooled.named_parameters()]
    pooled.set_state_dict(plain.state_dict())
    plain.eval(), pooled.eval()
    x = paddle.rand([2, 8, 14, 14])
    short = pooled.res5.blocks[0].short
    expected = plain.res5.blocks[0].short.conv  # weights of the variant-b shortcut
    want = paddle.nn.functional.conv2d(paddle.nn.functional.avg_pool2d(x, 2, 2), expected.weight)
    got = short.conv(paddle.nn.functional.avg_pool2d(x, 2, 2))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert pooled(x).shape == plain(x).shape == [2, 2048, 7, 7]
    assert pooled.conventions == {"res5_shortcut_avgpool": True} and plain.conventions == {}


# ---------------------------------------------------------------- decoding and NMS


def test_rcnn_box_plus_one_is_fluid_box_coder_in_original_pixels():
    rng = np.random.default_rng(0)
    rois = np.asarray([[10.0, 20.0, 90.0, 70.0], [0.0, 0.0, 30.0, 200.0]], np.float32)
    deltas = rng.normal(0, 1.0, (2, 8)).astype(np.float32)  # 2 classes
    deltas[0, 2] = 6.0  # beyond 2.x's dw clamp
    scores = np.asarray([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], np.float32)
    meta = {"im_shape": t([[120.0, 240.0]]), "scale_factor": t([[2.0, 2.0]])}
    raw = {"deltas": t(deltas), "scores": t(scores), "rois": t(rois), "rois_num": t([2], "int32")}
    decoder = RCNNBox(plus_one=True)
    boxes, probs, _ = decoder(raw, meta)
    ref = vops.box_coder(
        t(rois / 2.0), [0.1, 0.1, 0.2, 0.2], t(deltas.reshape(2, 2, 4)),
        "decode_center_size", False, axis=1,
    ).numpy()  # fmt: skip
    ref[..., 0::2] = np.clip(ref[..., 0::2], 0, 120 - 1)  # original 60 x 120: clip to w0 - 1
    ref[..., 1::2] = np.clip(ref[..., 1::2], 0, 60 - 1)
    np.testing.assert_allclose(boxes.numpy(), ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(probs.numpy(), scores[:, :2])
    assert decoder.rescale_after_nms is False and decoder.conventions == {
        "box_coder_plus_one": True
    }
    assert RCNNBox().rescale_after_nms is True and RCNNBox().conventions == {}


def test_cascade_refinement_plus_one_unclipped_is_fluid_box_coder():
    rois = np.asarray([[10.0, 20.0, 90.0, 70.0], [50.0, 50.0, 99.0, 99.0]], np.float32)
    deltas = np.asarray([[1.0, -2.0, 3.0, 0.5], [5.0, 5.0, 0.0, 0.0]], np.float32)
    out, num = refine_rois(
        t(deltas), t(rois), t([2], "int32"), [10, 10, 5, 5], t([[100.0, 100.0]]), False,
        plus_one=True, clip=False,
    )  # fmt: skip
    ref = vops.box_coder(
        t(rois), [0.1, 0.1, 0.2, 0.2], t(deltas[:, None]), "decode_center_size", False, axis=1
    ).numpy()[:, 0]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-4)
    assert out.numpy()[1, 2] > 100  # unclipped
    assert num.numpy().tolist() == [2]


def _nms_plus_one(boxes, scores, threshold):
    """Greedy NMS with +1 IoU, by hand (numpy)."""
    order, kept = np.argsort(-scores, kind="stable"), []
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    for i in order:
        ok = True
        for k in kept:
            iw = min(boxes[k, 2], boxes[i, 2]) - max(boxes[k, 0], boxes[i, 0]) + 1
            ih = min(boxes[k, 3], boxes[i, 3]) - max(boxes[k, 1], boxes[i, 1]) + 1
            inter = max(iw, 0) * max(ih, 0)
            ok &= inter / (area[k] + area[i] - inter) <= threshold
        if ok:
            kept.append(i)
    return kept


def test_nms_with_plus_one_iou():
    # two 10-px boxes overlapping by 5 px: IoU 5/15 = 0.333 continuous, 6/16 = 0.375 with +1
    boxes = np.asarray([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]], np.float32)
    scores = np.asarray([0.9, 0.8], np.float32)
    assert _nms_plus_one(boxes, scores, 0.35) == [0]
    args = (t(boxes[:, None]), t(scores[:, None]))
    kw = dict(score_threshold=0.0, nms_threshold=0.35, rois_num=t([2], "int32"))
    det, num = multiclass_nms(*args, **kw, normalized=False)
    assert num.numpy().tolist() == [1]
    det, num = multiclass_nms(*args, **kw)
    assert num.numpy().tolist() == [2]


# ---------------------------------------------------------------- masks


def _mask2out(mask, box, height, width):
    """v0.1's mask2out for one detection, with OpenCV (the reference)."""
    import cv2

    m = mask.shape[0]
    s = (m + 2.0) / m
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2 * s, (y2 - y1) / 2 * s
    x1, y1, x2, y2 = (int(v) for v in np.asarray([cx - hw, cy - hh, cx + hw, cy + hh]))
    padded = np.zeros((m + 2, m + 2), np.float32)
    padded[1:-1, 1:-1] = mask
    w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    resized = (cv2.resize(padded, (w, h)) > 0.5).astype(np.uint8)
    out = np.zeros((height, width), np.uint8)
    c0, c1 = min(max(x1, 0), width), min(max(x2 + 1, 0), width)
    r0, r1 = min(max(y1, 0), height), min(max(y2 + 1, 0), height)
    out[r0:r1, c0:c1] = resized[r0 - y1 : r1 - y1, c0 - x1 : c1 - x1]
    return out


def test_v01_mask_paste_is_mask2out():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 14, 14)).astype(np.float32)
    boxes = np.asarray(
        [[3.2, 4.7, 40.1, 30.9], [-5.0, 10.0, 20.0, 59.0], [50.0, 2.0, 79.0, 12.5], [7, 7, 8, 8]],
        np.float32,
    )
    height, width = 60, 80
    out = paste_masks(
        t(masks), t(boxes), t([4], "int32"), t([[height, width]], "int32"), paste="v0.1"
    ).numpy()
    for k in range(4):
        ref = _mask2out(masks[k], boxes[k], height, width)
        np.testing.assert_array_equal(out[k], ref, err_msg=f"mask {k}")
    post = MaskPostProcess(paste="v0.1")
    assert post.conventions == {"mask_paste": "v0.1"} and MaskPostProcess().conventions == {}
    with pytest.raises(ValueError, match="paste"):
        MaskPostProcess(paste="v0.2")


# ---------------------------------------------------------------- configs


V01_RCNN = {
    "faster_rcnn_r50_1x": "configs/faster_rcnn_r50_1x.yml",
    "faster_rcnn_r50_vd_1x": "configs/faster_rcnn_r50_vd_1x.yml",
    "faster_rcnn_r50_fpn_1x": "configs/faster_rcnn_r50_fpn_1x.yml",
    "mask_rcnn_r50_1x": "configs/mask_rcnn_r50_1x.yml",
    "mask_rcnn_r50_fpn_1x": "configs/mask_rcnn_r50_fpn_1x.yml",
    "cascade_rcnn_r50_fpn_1x": "configs/cascade_rcnn_r50_fpn_1x.yml",
}


@pytest.mark.parametrize("key", sorted(V01_RCNN))
def test_v01_configs_run_the_behaviour_their_weights_need(key):
    import ppdet
    from ppdet.modeling.conventions import missing_conventions, model_conventions
    from ppdet.zoo.legacy import LEGACY_MODELS

    cfg = ppdet.load_config(os.path.join(ROOT, V01_RCNN[key]))
    declared = model_conventions(ppdet.build_model(cfg))
    assert missing_conventions(LEGACY_MODELS[key].behaviour, declared) == []


def test_a_2x_config_runs_no_fluid_era_behaviour():
    import ppdet
    from ppdet.modeling.conventions import model_conventions

    path = os.path.join(ROOT, "configs", "cascade_rcnn", "cascade_rcnn_r50_fpn_1x_coco.yml")
    assert model_conventions(ppdet.build_model(ppdet.load_config(path))) == {}


def test_c4_proposals_are_made_in_fluid_anchor_order():
    """Saturated objectness ties: the proposals are those of fluid's ratio-major order."""
    from ppdet.modeling.heads.rpn_head import RPNHead

    sizes, ratios = [32.0, 64.0], [0.5, 1.0, 2.0]
    spec = dict(pre_nms_top_n=5, post_nms_top_n=5, nms_thresh=0.7, min_size=0.0, pixel_offset=True)
    head = RPNHead(
        anchor_generator={"name": "FluidAnchorGenerator", "anchor_sizes": sizes, "strides": [16]},
        train_proposal=spec,
        test_proposal=spec,
        in_channels=[4],
    )
    head.eval()
    assert head.anchor_generator.proposal_order == [0, 3, 1, 4, 2, 5]
    scores = paddle.full([1, 6, 2, 3], 9.0)  # every anchor ties
    deltas = paddle.zeros([1, 24, 2, 3])
    anchors = head.anchor_generator([(2, 3)])
    window = t([[64.0, 64.0]])
    order = head.anchor_generator.proposal_order
    from ppdet.modeling.heads.rpn_head import reorder_anchors

    s, d, a = reorder_anchors([scores], [deltas], anchors, order)
    # our anchor order[f] is fluid's anchor f: the permuted anchors are fluid's ratio-major ones
    grid = a[0].numpy().reshape(2, 3, 6, 4)
    cells = [cells_of_location_0([sz], [r])[0] for r in ratios for sz in sizes]
    np.testing.assert_allclose(grid[0, 0], np.stack(cells))
    expected, _, _ = vops.generate_proposals(
        s[0], d[0], window, a[0].reshape([2, 3, 6, 4]), paddle.ones([2, 3, 6, 4]),
        pre_nms_top_n=5, post_nms_top_n=5, nms_thresh=0.7, min_size=0.0, pixel_offset=True,
        return_rois_num=True,
    )  # fmt: skip
    got = head.test_proposal(s, d, a, window)[0]
    np.testing.assert_allclose(got.numpy(), expected.numpy())


def test_fluid_im_info_is_the_padded_size_or_the_unrounded_resized_one():
    from ppdet.modeling.architectures.two_stage import fluid_im_info

    image = paddle.zeros([1, 3, 800, 1203])
    im_shape, scale = t([[800.0, 1203.0]]), t([[800 / 300, 800 / 300]])
    # not padded (v0.1's C4 feed): 451 x 2.6667 = 1202.67, not the rounded 1203
    np.testing.assert_allclose(
        fluid_im_info(image, im_shape, scale).numpy(), [[800.0, 451 * 800 / 300]], rtol=1e-6
    )
    padded = paddle.zeros([1, 3, 800, 1216])  # padded to a multiple of 32 (FPN feeds)
    np.testing.assert_allclose(fluid_im_info(padded, im_shape, scale).numpy(), [[800.0, 1216.0]])
