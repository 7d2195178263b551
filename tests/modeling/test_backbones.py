import paddle
import pytest

from ppdet.modeling.backbones import DarkNet, MobileNet


def _check_outputs(backbone, size):
    backbone.eval()
    with paddle.no_grad():
        feats = backbone(paddle.randn([2, 3, size, size]))
    assert len(feats) == len(backbone.out_channels) == len(backbone.out_strides)
    for feat, channels, stride in zip(feats, backbone.out_channels, backbone.out_strides):
        assert tuple(feat.shape) == (2, channels, size // stride, size // stride)


def test_darknet53_outputs():
    backbone = DarkNet(depth=53)
    assert backbone.out_channels == [256, 512, 1024]
    assert backbone.out_strides == [8, 16, 32]
    _check_outputs(backbone, 64)


def test_darknet_return_idx_and_depth():
    backbone = DarkNet(return_idx=[1, 4])
    assert backbone.out_channels == [128, 1024] and backbone.out_strides == [4, 32]
    with pytest.raises(ValueError):
        DarkNet(depth=21)
    with pytest.raises(ValueError):
        DarkNet(return_idx=[5])


def test_darknet_freeze_at_stops_gradient():
    backbone = DarkNet(return_idx=[1], freeze_at=0)
    feats = backbone(paddle.randn([1, 3, 32, 32]))
    feats[0].sum().backward()
    assert backbone.conv0.conv.weight.grad is None
    assert getattr(backbone, "stage.1").blocks[0].conv1.conv.weight.grad is not None


@pytest.mark.parametrize("scale,expected", [(1.0, [256, 512, 1024]), (0.25, [64, 128, 256])])
def test_mobilenet_v1_outputs(scale, expected):
    backbone = MobileNet(scale=scale)
    assert backbone.out_channels == expected
    assert backbone.out_strides == [8, 16, 32]
    _check_outputs(backbone, 64)


def test_mobilenet_v1_feature_maps():
    backbone = MobileNet(scale=0.25, feature_maps=[0, 2, 11, 13])
    assert backbone.out_channels == [8, 32, 128, 256]
    assert backbone.out_strides == [2, 4, 16, 32]
    _check_outputs(backbone, 64)
    with pytest.raises(ValueError):
        MobileNet(feature_maps=[14])  # layers 14.. exist only with SSD's extra blocks
    extra = MobileNet(scale=0.25, feature_maps=[13, 14], with_extra_blocks=True)
    assert extra.out_channels == [256, 512] and extra.out_strides == [32, 64]
    _check_outputs(extra, 128)
