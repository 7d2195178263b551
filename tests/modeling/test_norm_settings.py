"""BN momentum and epsilon as config keys (``norm_momentum`` / ``norm_eps``) of the ResNet
backbone, the FPN, TwoWayFPN, PConvFPN, BiFPN and the RetinaNet towers: the values reach
Paddle's BatchNorm / SyncBatchNorm layers and act there (running statistics, eval output); seed
000's configs set its 0.99 / 1e-3 everywhere; BiFPN defaults to PaddleDetection 0.5's 0.997 /
1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.modeling.backbones.resnet import ResNet
from ppdet.modeling.heads import RetinaFeat
from ppdet.modeling.layers.conv_norm import ConvNormLayer
from ppdet.modeling.layers.norms import SyncBatchNorm2D
from ppdet.modeling.necks import BiFPN, PConvFPN, TwoWayFPN
from ppdet.modeling.necks.fpn import FPN

REPO = Path(__file__).resolve().parents[2]
BN_LAYERS = (paddle.nn.BatchNorm2D, paddle.nn.SyncBatchNorm)


def bn_layers(layer: paddle.nn.Layer) -> list[tuple[str, paddle.nn.Layer]]:
    return [(n, m) for n, m in layer.named_sublayers() if isinstance(m, BN_LAYERS)]


def settings(layer: paddle.nn.Layer) -> set[tuple[float, float]]:
    """The distinct (momentum, epsilon) of the BN layers in ``layer``."""
    return {(round(m._momentum, 6), round(m._epsilon, 9)) for _, m in bn_layers(layer)}


@pytest.mark.parametrize("norm_type", ["bn", "sync_bn"])
def test_conv_norm_layer_passes_momentum_and_eps(norm_type):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 3, 5, 5)) + 0.5).astype("float32")
    paddle.seed(0)
    layer = ConvNormLayer(3, 4, 1, act=None, norm_type=norm_type, norm_momentum=0.99, norm_eps=1e-3)
    norm = layer.batch_norm
    assert isinstance(norm, SyncBatchNorm2D if norm_type == "sync_bn" else paddle.nn.BatchNorm2D)
    assert settings(layer) == {(0.99, 0.001)}
    layer.train()
    y = layer.conv(paddle.to_tensor(x)).numpy()  # what the norm sees
    layer(paddle.to_tensor(x))
    # one training step moves the running mean 1% of the way: 0.99 * 0 + 0.01 * batch mean
    np.testing.assert_allclose(
        norm._mean.numpy(), 0.01 * y.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-7
    )
    layer.eval()
    mean = norm._mean.numpy().reshape(1, -1, 1, 1)
    var = norm._variance.numpy().reshape(1, -1, 1, 1)
    np.testing.assert_allclose(
        layer(paddle.to_tensor(x)).numpy(), (y - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5
    )


def test_defaults_stay_paddles():
    layer = ConvNormLayer(3, 4, 1, norm_type="bn")
    assert settings(layer) == {(0.9, 1e-5)}
    assert settings(ResNet(depth=18, freeze_norm=False, return_idx=[3])) == {(0.9, 1e-5)}


def test_resnet_fpn_and_towers_take_the_settings():
    kw = dict(norm_momentum=0.99, norm_eps=1e-3)
    backbone = ResNet(depth=18, norm_type="sync_bn", freeze_norm=False, return_idx=[1, 2, 3], **kw)
    units = [m for m in backbone.sublayers() if isinstance(m, ConvNormLayer)]
    assert len(units) >= 17 and len(bn_layers(backbone)) == len(units)  # one norm per conv
    assert settings(backbone) == {(0.99, 0.001)}
    neck = FPN(
        [128, 256, 512],
        out_channel=16,
        spatial_scales=[0.125, 0.0625, 0.03125],
        has_extra_convs=True,
        extra_stage=2,
        use_c5=False,
        norm_type="sync_bn",
        **kw,
    )
    assert len(bn_layers(neck)) == 8  # 3 laterals, 3 outputs, 2 extra convs
    assert settings(neck) == {(0.99, 0.001)}
    for per_level in (False, True):
        towers = RetinaFeat(
            16, 16, num_convs=2, norm_type="bn", norm_per_level=per_level, num_levels=5, **kw
        )
        assert len(bn_layers(towers)) == 4 * (5 if per_level else 1)
        assert settings(towers) == {(0.99, 0.001)}


@pytest.mark.parametrize("neck_cls", [TwoWayFPN, PConvFPN])
def test_two_way_fpn_and_pconv_take_the_settings_in_every_norm(neck_cls):
    kw = dict(out_channel=16, norm_type="bn", fpn_norm_type="bn")
    default = neck_cls([8, 16, 32], **kw)
    assert settings(default) == {(0.9, 1e-5)}
    neck = neck_cls([8, 16, 32], norm_momentum=0.99, norm_eps=1e-3, **kw)
    inner = bn_layers(neck.fpn)
    assert len(inner) == 8 and len(bn_layers(neck)) > len(inner)  # the FPN's and its own
    assert settings(neck) == {(0.99, 0.001)}


def test_bifpn_norms_follow_paddledetection_05_by_default():
    neck = BiFPN([8, 16, 32], out_channel=16, num_stacks=2)
    # laterals 3, P6 resample 1, and 2 x (4 up + 4 down) separable convs
    assert len(bn_layers(neck)) == 3 + 1 + 16
    assert settings(neck) == {(0.997, 1e-4)}
    other = BiFPN([8, 16, 32], out_channel=16, norm_momentum=0.99, norm_eps=1e-3)
    assert settings(other) == {(0.99, 0.001)}


def test_frozen_resnet_norm_keeps_eps():
    backbone = ResNet(depth=18, freeze_norm=True, return_idx=[3], norm_eps=1e-3)
    assert {eps for _, eps in settings(backbone)} == {0.001}


@pytest.mark.parametrize(
    "rel",
    [
        "retinanet/retinanet_r50_fpn_640_3x_coco.yml",
        "retinanet/retinanet_r50_fpn_640_30x_scratch_coco.yml",
    ],
)
def test_seed_000_configs_reach_every_bn_layer(rel):
    cfg = ppdet.load_config(str(REPO / "configs" / rel), ["ResNet.depth=18"])
    model = ppdet.build_model(cfg)
    for part in (model.backbone, model.neck, model.head):
        layers = bn_layers(part)
        assert layers and all(isinstance(m, SyncBatchNorm2D) for _, m in layers)
        assert settings(part) == {(0.99, 0.001)}
    # the head's tower norms are per level (the seed: one BN per tower conv and level)
    tower = model.head.conv_feat.fcos_head_cls_tower_conv_0
    assert len(tower.norms) == 5
    # the FPN normalises its 3x3 output and extra convs, not the 1x1 laterals (biased convs)
    names = set(model.neck.state_dict())
    assert "fpn_inner_res5_sum.bias" in names and "fpn_inner_res4_sum_lateral.bias" in names
    assert not any(n.startswith("fpn_inner") and ".norm." in n for n in names)
    assert "fpn_res3_sum.norm._mean" in names and "fpn_7.norm._mean" in names
    assert len(bn_layers(model.neck)) == 5  # P3-P5 outputs, P6, P7
