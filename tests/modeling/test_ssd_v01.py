"""SSD-MobileNetV1 with PaddleDetection v0.1's extra blocks (ReLU, not ReLU6), and the v0.1
config declaring what the v0.1 checkpoint needs. Against v0.1 itself: bench/compare_legacy.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppdet
from ppdet.modeling.backbones import MobileNet
from ppdet.modeling.conventions import missing_conventions, model_conventions
from ppdet.zoo.legacy_families import SSD
from ppdet.zoo.legacy_rules import Arch

REPO = Path(__file__).resolve().parents[2]


def _by_hand(block, x, act):
    """act(bn(conv(act(bn(conv(x)))))) with the block's own layers (eval mode)."""
    for layer in (block.pointwise_conv, block.normal_conv):
        x = act(layer._batch_norm(layer._conv(x)))
    return x


@pytest.mark.parametrize("act, fn", [("relu", F.relu), ("relu6", F.relu6)])
def test_extra_block_activation(act, fn):
    paddle.seed(0)
    net = MobileNet(
        scale=0.25, feature_maps=[14], with_extra_blocks=True,
        extra_block_filters=[[8, 16]], extra_block_act=act,
    )  # fmt: skip
    net.eval()
    block = net.conv7_1
    x = paddle.to_tensor(np.random.default_rng(0).uniform(0, 50, (1, 256, 4, 4)), "float32")
    got = block(x)
    np.testing.assert_allclose(got.numpy(), _by_hand(block, x, fn).numpy(), rtol=1e-5, atol=1e-5)
    assert (got.numpy().max() > 6) == (act == "relu")  # large inputs: ReLU6 saturates
    assert net.conventions == {"extra_block_act": act}
    assert MobileNet().conventions == {}  # no extra blocks, nothing to declare
    with pytest.raises(ValueError, match="extra_block_act must be"):
        MobileNet(with_extra_blocks=True, extra_block_act="swish")


def test_v01_config_runs_what_its_checkpoint_needs():
    needed = SSD.behaviour(Arch("ssd", "mobilenet_v1", affine=False))
    model = ppdet.build_model(ppdet.load_config(str(REPO / "configs/ssd/ssd_mobilenet_v1_voc.yml")))
    assert model_conventions(model) == needed == {"extra_block_act": "relu"}
    plain = ppdet.build_model(
        ppdet.load_config(str(REPO / "configs/ssd/ssd_mobilenet_v1_300_120e_voc.yml"))
    )
    assert missing_conventions(needed, model_conventions(plain)) == [
        "extra_block_act='relu' (model: 'relu6')"
    ]
