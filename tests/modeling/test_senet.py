"""SENet's squeeze-excitation pooling: v0.1's fluid sum (SENet.se_pool: fluid) against numpy."""

import numpy as np
import paddle
import pytest

from ppdet.modeling.backbones.resnet import SELayer
from ppdet.modeling.backbones.senet import FluidSELayer, SENet, fluid_global_mean
from ppdet.modeling.conventions import model_conventions


def test_fluid_global_mean_is_a_sequential_float32_sum_then_a_division():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 3, 37, 53)) * 3 + 0.2).astype(np.float32)
    running = np.add.accumulate(x.reshape(2, 3, -1), axis=-1)[..., -1]  # float32, in order
    expected = running / np.float32(37 * 53)
    got = fluid_global_mean(paddle.to_tensor(x)).numpy()
    assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_fluid_se_layer_scales_by_the_excitation_of_the_fluid_mean():
    paddle.seed(0)
    layer = FluidSELayer(32, 16)
    x = paddle.randn([1, 32, 5, 7])
    s = fluid_global_mean(x).numpy() @ layer.squeeze.weight.numpy() + layer.squeeze.bias.numpy()
    s = np.maximum(s, 0) @ layer.extract.weight.numpy() + layer.extract.bias.numpy()
    expected = x.numpy() * (1 / (1 + np.exp(-s)))[:, :, None, None]
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_se_pool_fluid_keeps_the_parameters_and_declares_the_convention():
    with paddle.LazyGuard():
        mean = SENet(depth=50, groups=32, base_width=4)
        fluid = SENet(depth=50, groups=32, base_width=4, se_pool="fluid")
    shapes = {k: tuple(v.shape) for k, v in mean.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in fluid.state_dict().items()} == shapes
    blocks = [layer.se for _, layer in fluid.named_sublayers() if hasattr(layer, "se")]
    assert len(blocks) == 16 and all(type(se) is FluidSELayer for se in blocks)
    assert model_conventions(fluid) == {"se_pool": "fluid"}
    assert model_conventions(mean) == {}
    assert all(
        type(layer.se) is SELayer for _, layer in mean.named_sublayers() if hasattr(layer, "se")
    )
    with pytest.raises(ValueError, match="se_pool: 'sum' is not one of mean, fluid"):
        SENet(depth=50, se_pool="sum")
