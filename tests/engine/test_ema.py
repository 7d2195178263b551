"""ModelEMA: the averaging formula, applying and restoring weights, checkpoint round trip."""

import numpy as np
import paddle

from ppdet.engine import checkpoint
from ppdet.engine.ema import ModelEMA


def test_average_follows_the_formula_and_applied_restores():
    model = paddle.nn.Linear(1, 1, bias_attr=False)
    model.weight.set_value(np.array([[0.0]], "float32"))
    ema = ModelEMA(model, decay=0.9)
    expected = 0.0
    for step, w in enumerate([1.0, 2.0, 3.0], start=1):
        model.weight.set_value(np.array([[w]], "float32"))
        ema.update(model)
        d = min(0.9, (1 + step) / (10 + step))  # 2/11, 3/12, 4/13
        expected = d * expected + (1 - d) * w
    np.testing.assert_allclose(ema.state["weight"].numpy(), [[expected]], rtol=1e-6)
    with ema.applied(model):
        np.testing.assert_allclose(model.weight.numpy(), [[expected]], rtol=1e-6)
    assert model.weight.numpy()[0, 0] == 3.0


def test_checkpoint_keeps_raw_and_average(tmp_path):
    model = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.SGD(0.1, parameters=model.parameters())
    ema = ModelEMA(model, decay=0.5)
    model(paddle.ones([1, 2])).sum().backward()
    opt.step()
    ema.update(model)
    prefix = str(tmp_path / "c")
    checkpoint.save_checkpoint(prefix, model, opt, epoch=1, iteration=1, config_text="", ema=ema)

    saved = paddle.load(prefix + ".pdparams")  # what eval / infer load: the average
    np.testing.assert_allclose(saved["weight"].numpy(), ema.state["weight"].numpy())

    model2 = paddle.nn.Linear(2, 2)
    opt2 = paddle.optimizer.SGD(0.1, parameters=model2.parameters())
    ema2 = ModelEMA(model2, decay=0.5)
    checkpoint.load_checkpoint(prefix, model2, opt2, ema2)
    np.testing.assert_allclose(model2.weight.numpy(), model.weight.numpy())  # raw weights
    np.testing.assert_allclose(ema2.state["weight"].numpy(), ema.state["weight"].numpy())
    assert ema2.step == 1
