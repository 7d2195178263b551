"""RetinaHead options: tower norms (shared / per level), the box loss choice (smooth-L1 or
IoU family on decoded boxes) with hand-computed values and finite gradients, the Stitcher's
loss split; EfficientDetHead names and shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.modeling.heads import EfficientDetFeat, EfficientDetHead, RetinaFeat, RetinaHead
from ppdet.modeling.heads.retina_head import BoxLoss
from ppdet.modeling.layers.norms import NORM_TYPES
from ppdet.modeling.losses.iou_loss import GIoULoss

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "configs" / "retinanet" / "retinanet_r18_fpn_demo.yml")
LEVELS = [(12, 12), (6, 6), (3, 3), (2, 2), (1, 1)]


def feats(channels=32, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return [
        paddle.to_tensor(rng.normal(size=(batch, channels, h, w)), "float32") for h, w in LEVELS
    ]


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_tower_norms_shared_by_levels(norm_type):
    paddle.seed(0)
    feat = RetinaFeat(feat_in=32, feat_out=32, num_convs=2, norm_type=norm_type)
    names = sorted(k for k in feat.state_dict() if k.startswith("fcos_head_cls_tower_conv_0"))
    assert "fcos_head_cls_tower_conv_0.conv.weight" in names
    assert "fcos_head_cls_tower_conv_0.conv.bias" in names  # 2.x keeps the conv bias
    assert any(k.startswith("fcos_head_cls_tower_conv_0.norm.") for k in names)
    feat.train()
    for level, x in enumerate(feats()):
        cls_feat, reg_feat = feat(x, level)
        assert cls_feat.shape == reg_feat.shape == x.shape
        assert np.isfinite(cls_feat.numpy()).all()
    if norm_type.startswith("evonorm"):  # its own activation: no ReLU after it
        assert float(cls_feat.min()) < 0
    else:
        assert float(cls_feat.min()) >= 0


def test_no_norm_keeps_paddledetection_names():
    feat = RetinaFeat(feat_in=32, feat_out=32, num_convs=1)
    assert sorted(feat.state_dict()) == [
        "fcos_head_cls_tower_conv_0.conv.bias",
        "fcos_head_cls_tower_conv_0.conv.weight",
        "fcos_head_reg_tower_conv_0.conv.bias",
        "fcos_head_reg_tower_conv_0.conv.weight",
    ]


def test_per_level_norms_use_their_own_statistics():
    paddle.seed(0)
    feat = RetinaFeat(feat_in=8, feat_out=8, num_convs=1, norm_type="bn", norm_per_level=True)
    tower = feat.fcos_head_cls_tower_conv_0
    assert len(tower.norms) == 5 and not hasattr(tower, "norm")
    assert "fcos_head_cls_tower_conv_0.norms.4._mean" in feat.state_dict()
    feat.train()
    x = paddle.full([2, 8, 4, 4], 3.0) + paddle.rand([2, 8, 4, 4])
    feat(x, level=2)
    means = [float(n._mean.abs().sum()) for n in tower.norms]
    assert means[2] > 0 and all(m == 0 for i, m in enumerate(means) if i != 2)
    with pytest.raises(ValueError, match="num_levels"):
        feat(x, level=5)


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="norm_type: unknown 'layer'"):
        RetinaFeat(norm_type="layer")


# ------------------------------------------------------------------ box losses
def test_giou_on_decoded_boxes_hand_values():
    anchors = paddle.to_tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    gt = paddle.to_tensor([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])
    zero = paddle.zeros([3, 4])  # predicted box = anchor
    giou = BoxLoss({"name": "GIoULoss"}).per_anchor(zero, anchors, gt, [1, 1, 1, 1])
    # overlap: IoU 50/150, enclosing 150 = union -> 1 - 1/3; identical: 0;
    # disjoint 10 apart: IoU 0, enclosing 300, union 200 -> 1 + 100/300
    np.testing.assert_allclose(giou.numpy(), [2 / 3, 0.0, 4 / 3], rtol=1e-5)
    iou = BoxLoss({"name": "IoULoss", "mode": "iou", "loss_weight": 2.0})
    np.testing.assert_allclose(
        iou.per_anchor(zero, anchors, gt, [1, 1, 1, 1]).numpy(), [4 / 3, 0.0, 2.0], rtol=1e-5
    )
    # DIoU: centres 5 apart, enclosing diagonal^2 = 15^2 + 10^2 -> + 25 / 325
    diou = BoxLoss({"name": "DIouLoss", "use_complete_iou_loss": False})
    value = diou.per_anchor(zero[:1], anchors[:1], gt[:1], [1, 1, 1, 1])
    np.testing.assert_allclose(value.numpy(), [2 / 3 + 25 / 325], rtol=1e-5)


def test_smooth_l1_matches_deltas():
    anchors = paddle.to_tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = paddle.to_tensor([[0.0, 0.0, 20.0, 10.0]])  # dx 0.5, dw log 2
    loss = BoxLoss({"name": "SmoothL1Loss", "beta": 0.0}).per_anchor(
        paddle.zeros([1, 4]), anchors, gt, [1, 1, 1, 1]
    )
    np.testing.assert_allclose(loss.numpy(), [0.5 + np.log(2.0)], rtol=1e-5)


@pytest.mark.parametrize("name", ["IoULoss", "GIoULoss", "DIouLoss"])
def test_degenerate_boxes_give_finite_gradients(name):
    anchors = paddle.to_tensor([[0.0, 0.0, 10.0, 10.0]] * 4)
    gt = paddle.to_tensor(  # zero width, zero height, a point, inverted corners
        [[5.0, 0.0, 5.0, 10.0], [0.0, 5.0, 10.0, 5.0], [3.0, 3.0, 3.0, 3.0], [8.0, 8.0, 2.0, 2.0]]
    )
    deltas = paddle.to_tensor(
        [[0.0, 0.0, -50.0, 0.0], [0.0, 0.0, 50.0, 50.0], [1e3, -1e3, -1e3, -1e3], [0, 0, 0, 0]],
        stop_gradient=False,
    )
    loss = BoxLoss({"name": name}).per_anchor(deltas, anchors, gt, [1, 1, 1, 1])
    loss.sum().backward()
    assert np.isfinite(loss.numpy()).all() and np.isfinite(deltas.grad.numpy()).all()


def test_box_loss_config_errors():
    with pytest.raises(ValueError, match="loss_bbox.name: unknown 'L2Loss'"):
        BoxLoss({"name": "L2Loss"})
    with pytest.raises(ValueError, match="reduction"):
        BoxLoss({"name": "GIoULoss", "reduction": "mean"})
    with pytest.raises(ValueError, match="beta"):
        BoxLoss({"name": "GIoULoss", "beta": 0.1})
    built = BoxLoss(GIoULoss(loss_weight=2.0))
    assert built.on_boxes and built.mode == "giou" and built.loss_weight == 2.0


def tiny_model(extra=()):
    paddle.seed(0)
    opts = [
        "num_classes=3",
        "FPN.out_channel=32",
        "RetinaHead.conv_feat.feat_out=32",
        "RetinaHead.conv_feat.num_convs=1",
        *extra,
    ]
    return ppdet.build_model(ppdet.load_config(DEMO, opts))


def batch():
    rng = np.random.default_rng(0)
    return {
        "image": paddle.to_tensor(rng.normal(size=(2, 3, 96, 96)), "float32"),
        "im_shape": paddle.to_tensor([[96, 96]] * 2, "float32"),
        "scale_factor": paddle.ones([2, 2]),
        "gt_bbox": paddle.to_tensor(
            [[[10, 10, 30, 25], [40, 30, 90, 90]], [[5, 50, 40, 90], [0, 0, 0, 0]]], "float32"
        ),
        "gt_class": paddle.to_tensor([[[0], [2]], [[1], [0]]], "int32"),
        "pad_gt_mask": paddle.to_tensor([[[1], [1]], [[1], [0]]], "float32"),
    }


def test_giou_head_loss_and_stitcher_split():
    model = tiny_model(["RetinaHead.loss_bbox={name: GIoULoss, loss_weight: 2.0}"])
    model.train()
    raw = model(batch())
    losses = model.loss(raw, batch())
    labels = model.head._targets(paddle.concat(raw["anchors"]), batch(), 2)[2]
    num_pos = float((labels == 1).astype("float32").sum())
    split = losses["reg_loss_by_scale"]
    total = sum(float(v) for v in split.values())
    np.testing.assert_allclose(total, float(losses["loss_reg"]) * num_pos, rtol=1e-4)
    # a 20 x 15 box (small, < 32^2), 50 x 60 and 35 x 40 ones (medium), none >= 96^2
    assert float(split["small"]) > 0 and float(split["medium"]) > 0
    assert float(split["large"]) == 0
    assert 0 < float(losses["loss_reg"]) <= 2.0 * 2.0  # weight 2, GIoU loss <= 2 per anchor
    losses["loss"].backward()


def test_loss_bbox_by_name():
    model = tiny_model(["RetinaHead.loss_bbox=SmoothL1Loss"])
    assert not model.head.box_loss.on_boxes and model.head.box_loss.beta == 0.0
    model = tiny_model(["RetinaHead.loss_bbox=GIoULoss", "GIoULoss.loss_weight=2.0"])
    assert model.head.box_loss.mode == "giou" and model.head.box_loss.loss_weight == 2.0


def test_head_norm_from_config_trains():
    model = tiny_model(["RetinaHead.conv_feat.norm_type=gn", "RetinaHead.loss_bbox=GIoULoss"])
    assert isinstance(model.head.conv_feat.fcos_head_cls_tower_conv_0.norm, paddle.nn.GroupNorm)
    model.train()
    opt = paddle.optimizer.Adam(2e-3, parameters=model.parameters())
    history = []
    for _ in range(6):
        loss = model.losses(batch())["loss"]
        history.append(float(loss))
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert history[-1] < 0.8 * history[0], history


# ------------------------------------------------------------------ EfficientDet
def test_efficientdet_head_names_shapes_and_per_level_bn():
    paddle.seed(0)
    feat = EfficientDetFeat(feat_in=16, feat_out=16, repeat=3, num_levels=5)
    head = EfficientDetHead(num_classes=3, conv_feat=feat, in_channels=[16])
    names = head.state_dict()
    assert names["conv_feat.cls_pred_conv_0.dw.weight"].shape == [16, 1, 3, 3]
    assert names["conv_feat.cls_pred_conv_0.pw.bias"].shape == [16]
    assert "conv_feat.box_pred_bn_4_2._variance" in names
    assert names["cls_pred.pw.weight"].shape == [27, 16, 1, 1]  # 9 anchors x 3 classes
    assert names["box_pred.pw.weight"].shape == [36, 16, 1, 1]
    np.testing.assert_allclose(head.cls_pred.pw.bias.numpy(), -np.log(99), rtol=1e-5)
    bn = feat.cls_pred_bn_0_0
    assert abs(bn._momentum - 0.997) < 1e-9 and abs(bn._epsilon - 1e-4) < 1e-9
    head.train()
    cls_logits, deltas = head(feats(16))
    assert [x.shape for x in cls_logits] == [[2, 27, h, w] for h, w in LEVELS]
    assert [x.shape for x in deltas] == [[2, 36, h, w] for h, w in LEVELS]
    assert float(feat.cls_pred_bn_1_0._mean.abs().sum()) > 0  # every level's own BN moved
    assert isinstance(head, RetinaHead)
    with pytest.raises(ValueError, match="act: unknown 'gelu'"):
        EfficientDetFeat(act="gelu")
    with pytest.raises(ValueError, match="level 5 outside"):
        feat(feats(16)[0], level=5)


def test_efficientdet_d0_size_matches_the_paper():
    """3.9M parameters published (Tan et al. 2020, Table 2); ours within 2%."""
    model = ppdet.build_model(
        ppdet.load_config(str(REPO / "configs" / "efficientdet" / "efficientdet_d0_coco.yml"))
    )
    learnable = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    assert abs(learnable / 3.9e6 - 1) < 0.02, learnable
    assert model.neck.out_strides == [8, 16, 32, 64, 128]
