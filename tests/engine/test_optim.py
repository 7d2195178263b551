"""LR schedules and optimizers from PaddleDetection-shaped config sections."""

import math
import re

import numpy as np
import paddle
import pytest

from ppdet.engine.optim import build_lr, build_optimizer, norm_parameter_names, param_groups


def lr_values(sched, n):
    """LR used at iterations 0..n-1 (the scheduler is stepped after each iteration)."""
    out = []
    for _ in range(n):
        out.append(sched())
        sched.step()
    return out


PIECEWISE = {
    "base_lr": 0.01,
    "schedulers": [
        {"name": "PiecewiseDecay", "gamma": 0.1, "milestones": [2, 3]},
        {"name": "LinearWarmup", "start_factor": 0.0, "steps": 5},
    ],
}


def test_warmup_piecewise_epoch_based():
    # 10 iterations per epoch: milestones at iterations 20 and 30; warmup 0 -> 1 over 5 iters
    lrs = lr_values(build_lr(PIECEWISE, steps_per_epoch=10, epoch_based=True), 35)
    expected = {0: 0.0, 1: 0.002, 4: 0.008, 5: 0.01, 19: 0.01, 20: 0.001, 29: 0.001, 30: 0.0001}
    for t, v in expected.items():
        assert lrs[t] == pytest.approx(v), t


def test_warmup_piecewise_iteration_based():
    cfg = {
        "base_lr": 0.01,
        "schedulers": [
            {"name": "PiecewiseDecay", "gamma": [0.1, 0.05], "milestones": [8, 12]},
            {"name": "LinearWarmup", "start_factor": 0.5, "steps": 4},
        ],
    }
    lrs = lr_values(build_lr(cfg, steps_per_epoch=100, epoch_based=False), 14)
    expected = {0: 0.005, 2: 0.0075, 4: 0.01, 7: 0.01, 8: 0.001, 11: 0.001, 12: 0.0005}
    for t, v in expected.items():
        assert lrs[t] == pytest.approx(v), t


def test_warmup_given_in_epochs_and_use_warmup_false():
    cfg = {
        "base_lr": 1.0,
        "schedulers": [
            {"name": "PiecewiseDecay", "gamma": 0.1, "milestones": [100]},
            {"name": "LinearWarmup", "start_factor": 0.0, "epochs": 2},
        ],
    }
    lrs = lr_values(build_lr(cfg, steps_per_epoch=4, epoch_based=True), 9)
    assert lrs[:9] == pytest.approx([0, 1 / 8, 2 / 8, 3 / 8, 4 / 8, 5 / 8, 6 / 8, 7 / 8, 1])
    cfg["schedulers"][0]["use_warmup"] = False
    assert build_lr(cfg, steps_per_epoch=4, epoch_based=True)() == 1.0


def cosine_cfg(max_epochs):
    return {
        "base_lr": 0.1,
        "schedulers": [
            {"name": "CosineDecay", "max_epochs": max_epochs, "min_lr_ratio": 0.1},
            {"name": "LinearWarmup", "start_factor": 0.0, "steps": 2},
        ],
    }


@pytest.mark.parametrize("epoch_based, max_epochs", [(True, 4), (False, 20)])
def test_warmup_then_cosine_over_the_remaining_iterations(epoch_based, max_epochs):
    # PaddleDetection 2.6: 20 iterations in all; warmup 0 -> base_lr over iterations 0..1,
    # then a cosine from 0.1 at t = 2 to 0.01 at t = 20 (18 iterations):
    # lr(t) = 0.01 + 0.09 * (1 + cos(pi (t - 2) / 18)) / 2
    lrs = lr_values(build_lr(cosine_cfg(max_epochs), 5, epoch_based), 26)
    assert lrs[0] == 0.0
    assert lrs[1] == pytest.approx(0.05)  # half-way through the warmup: half of base_lr
    assert lrs[2] == pytest.approx(0.1)  # warmup done: the cosine starts at base_lr
    assert lrs[5] == pytest.approx(0.01 + 0.045 * (1 + math.cos(math.pi / 6)))
    assert lrs[11] == pytest.approx(0.055)  # middle of the cosine
    assert lrs[19] == pytest.approx(0.01 + 0.045 * (1 + math.cos(math.pi * 17 / 18)))
    assert lrs[20] == pytest.approx(0.01) and lrs[25] == pytest.approx(0.01)


def test_cosine_without_warmup_starts_at_iteration_0():
    cfg = cosine_cfg(20)
    cfg["schedulers"][0]["use_warmup"] = False
    lrs = lr_values(build_lr(cfg, 5, epoch_based=False), 21)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.055)
    assert lrs[20] == pytest.approx(0.01)


def test_cosine_min_lr_and_plateau():
    cfg = {
        "base_lr": 1.0,
        "schedulers": [
            {"name": "CosineDecay", "max_epochs": 4, "min_lr": 0.2, "last_plateau_epochs": 2}
        ],
    }
    lrs = lr_values(build_lr(cfg, steps_per_epoch=1, epoch_based=True), 4)
    assert lrs == pytest.approx([1.0, 0.6, 0.2, 0.2])  # cosine over the first 2 epochs


def test_warmup_cosine_and_plateau():
    # 6 epochs of 2 iterations, the last epoch at min_lr: warmup over t = 0..1, cosine over
    # t = 2..9 (8 iterations), min_lr from t = 10
    cfg = {
        "base_lr": 1.0,
        "schedulers": [
            {"name": "CosineDecay", "max_epochs": 6, "min_lr": 0.2, "last_plateau_epochs": 1},
            {"name": "LinearWarmup", "start_factor": 0.0, "steps": 2},
        ],
    }
    lrs = lr_values(build_lr(cfg, steps_per_epoch=2, epoch_based=True), 12)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert lrs[6] == pytest.approx(0.6)
    assert lrs[10:] == pytest.approx([0.2, 0.2])


def test_state_round_trip(tmp_path):
    sched = build_lr(PIECEWISE, steps_per_epoch=10, epoch_based=True)
    lr_values(sched, 18)
    path = str(tmp_path / "sched.pdopt")
    paddle.save(sched.state_dict(), path)
    resumed = build_lr(PIECEWISE, steps_per_epoch=10, epoch_based=True)
    resumed.set_state_dict(paddle.load(path))
    assert resumed.last_epoch == 18
    assert lr_values(resumed, 5) == lr_values(sched, 5)  # crosses the milestone at 20
    assert resumed() == pytest.approx(0.001)


def zero_grad_step(model, opt):
    """One optimizer step whose gradients are all zero: only weight decay moves weights."""
    loss = (model(paddle.ones([2, 3])) * 0.0).sum()
    loss.backward()
    opt.step()
    opt.clear_grad()


class Net(paddle.nn.Layer):
    def __init__(self, with_norm=True):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 2)
        self.bn = paddle.nn.BatchNorm1D(2) if with_norm else None

    def forward(self, x):
        x = self.fc(x)
        return self.bn(x) if self.bn is not None else x


def constant_lr(value):
    return build_lr({"base_lr": value, "schedulers": []}, steps_per_epoch=1, epoch_based=False)


def test_momentum_l2_decay_moves_weights_by_lr_factor_w():
    paddle.seed(1)
    model = Net(with_norm=False)
    cfg = {
        "optimizer": {"type": "Momentum", "momentum": 0.9},
        "regularizer": {"type": "L2", "factor": 0.5},
        "clip_grad_by_norm": None,
    }
    opt = build_optimizer(cfg, constant_lr(0.1), model)
    w0 = model.fc.weight.numpy().copy()
    zero_grad_step(model, opt)
    np.testing.assert_allclose(model.fc.weight.numpy(), w0 - 0.1 * 0.5 * w0, rtol=1e-6)


@pytest.mark.parametrize("opt_type", ["Momentum", "AdamW"])
def test_no_weight_decay_on_norm(opt_type):
    paddle.seed(1)
    model = Net()
    with paddle.no_grad():
        model.bn.weight.set_value(paddle.full([2], 2.0))
    cfg = {"optimizer": {"type": opt_type}, "no_weight_decay_on_norm": True}
    if opt_type == "AdamW":
        cfg["optimizer"]["weight_decay"] = 0.5
    else:
        cfg["regularizer"] = {"type": "L2", "factor": 0.5}
    opt = build_optimizer(cfg, constant_lr(0.1), model)
    w0 = model.fc.weight.numpy().copy()
    zero_grad_step(model, opt)
    np.testing.assert_allclose(model.fc.weight.numpy(), 0.95 * w0, rtol=1e-6)
    np.testing.assert_allclose(model.bn.weight.numpy(), [2.0, 2.0])


def one_step(model, opt):
    """One plain-SGD step on loss sum(fc(ones)): d loss / d bias = [2, 2] (batch of 2)."""
    model(paddle.ones([2, 3])).sum().backward()
    opt.step()
    opt.clear_grad()


def test_param_rules_set_lr_multiplier_and_decay():
    """v0.1's biases: twice the LR and no weight decay; other parameters unchanged."""
    paddle.seed(1)
    model = Net(with_norm=False)
    cfg = {
        "optimizer": {"type": "Momentum", "momentum": 0.0},
        "regularizer": {"type": "L2", "factor": 0.5},
        "param_rules": [{"match": r"\.bias$", "lr_mult": 2.0, "weight_decay": False}],
    }
    opt = build_optimizer(cfg, constant_lr(0.1), model)
    w0, b0 = model.fc.weight.numpy().copy(), model.fc.bias.numpy().copy()
    one_step(model, opt)
    # bias: -2 x 0.1 x grad 2, no decay; weight: -0.1 x (grad 2 + 0.5 w)
    np.testing.assert_allclose(model.fc.bias.numpy(), b0 - 0.4, rtol=1e-6)
    np.testing.assert_allclose(model.fc.weight.numpy(), w0 - 0.1 * (2 + 0.5 * w0), rtol=1e-5)


def test_param_rules_first_match_wins_and_own_multipliers_survive():
    paddle.seed(1)
    model = Net()
    model.bn.weight.optimize_attr["learning_rate"] = 0.5  # as ParamAttr(learning_rate=0.5)
    cfg = {
        "optimizer": {"type": "Momentum", "momentum": 0.0},
        "regularizer": None,
        "no_weight_decay_on_norm": True,
        "param_rules": [
            {"match": r"^fc\.bias$", "lr_mult": 3.0},
            {"match": r"bias$", "lr_mult": 10.0},  # fc.bias matched above: not 10
        ],
    }
    build_optimizer(cfg, constant_lr(0.1), model)  # checks the section, builds the groups
    norms = norm_parameter_names(model)
    rules = [(re.compile(r["match"]), r["lr_mult"], True) for r in cfg["param_rules"]]
    groups = param_groups(model, rules, norms)
    named = {id(p): n for n, p in model.named_parameters()}
    got = {
        named[id(p)]: (g["learning_rate"], "weight_decay" not in g)
        for g in groups
        for p in g["params"]
    }
    # fc.bias 3 (the first rule), bn.bias 10, bn.weight keeps its own 0.5; norms not decayed
    assert got == {
        "fc.weight": (1.0, True),
        "fc.bias": (3.0, True),
        "bn.weight": (0.5, False),
        "bn.bias": (10.0, False),
    }


@pytest.mark.parametrize(
    "rules, message",
    [
        ([{"match": "^nothing$"}], r"param_rules\[0\].match: '\^nothing\$' matches no trainable"),
        ([{"match": "("}], r"param_rules\[0\].match: not a regular expression"),
        ([{"match": "bias", "lr": 2}], r"param_rules\[0\]"),
        ([{"match": "bias", "lr_mult": -1}], r"lr_mult must be >= 0"),
        ({"match": "bias"}, r"OptimizerBuilder.param_rules"),
    ],
)
def test_param_rules_errors(rules, message):
    from ppdet.config.errors import ConfigError

    cfg = {"optimizer": {"type": "Momentum"}, "param_rules": rules}
    with pytest.raises(ConfigError, match=message):
        build_optimizer(cfg, constant_lr(0.1), Net())


def test_optimizer_follows_scheduler_and_clips():
    model = Net()
    sched = build_lr(PIECEWISE, steps_per_epoch=10, epoch_based=True)
    cfg = {"optimizer": {"type": "Adam"}, "clip_grad_by_norm": 1.0}
    opt = build_optimizer(cfg, sched, model)
    assert isinstance(opt, paddle.optimizer.Adam)
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    for _ in range(3):
        sched.step()
    assert opt.get_lr() == pytest.approx(0.006)


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            {"base_lr": 0.1, "schedulers": [{"name": "PiecewiseDecay", "gamma": "x"}]},
            "LearningRate.schedulers[0].gamma",
        ),
        (
            {"base_lr": 0.1, "schedulers": [{"name": "PiecewiseDecay", "gama": 0.1}]},
            "LearningRate.schedulers[0].gama: unknown key",
        ),
        (
            {"base_lr": 0.1, "schedulers": [{"name": "StepDecay"}]},
            "LearningRate.schedulers[0].name: unknown scheduler 'StepDecay'",
        ),
        (
            {"base_lr": 0.1, "schedulers": [{"name": "LinearWarmup", "steps": 1.5}]},
            "LearningRate.schedulers[0].steps",
        ),
        ({"base_lr": -1.0}, "LearningRate.base_lr: must be >= 0"),
        ({"base_lr": 0.1, "warmup": 3}, "LearningRate.warmup: unknown key"),
        (
            {
                "base_lr": 0.1,
                "schedulers": [{"name": "PiecewiseDecay", "gamma": [0.1], "milestones": [1, 2]}],
            },
            "LearningRate.schedulers[0].gamma",
        ),
    ],
)
def test_lr_config_errors(cfg, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_lr(cfg, steps_per_epoch=10, epoch_based=True)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"optimizer": {"type": "SGDX"}}, "OptimizerBuilder.optimizer.type: unknown optimizer"),
        (
            {"optimizer": {"type": "Momentum", "momentun": 0.9}},
            "OptimizerBuilder.optimizer.momentun: unknown key",
        ),
        (
            {"optimizer": {"type": "Momentum"}, "regularizer": {"type": "L3", "factor": 1.0}},
            "OptimizerBuilder.regularizer.type",
        ),
        (
            {"optimizer": {"type": "Momentum"}, "regularizer": {"type": "L2"}},
            "OptimizerBuilder.regularizer.factor: required",
        ),
        (
            {"optimizer": {"type": "AdamW"}, "regularizer": {"type": "L2", "factor": 1e-4}},
            "OptimizerBuilder.regularizer: AdamW",
        ),
        (
            {"optimizer": {"type": "Momentum"}, "clip_grad_by_norm": "big"},
            "OptimizerBuilder.clip_grad_by_norm",
        ),
        ({"optimzer": {"type": "Momentum"}}, "OptimizerBuilder.optimzer: unknown key"),
        (
            {"optimizer": {"type": "RMSProp", "beta1": 0.9}},
            "OptimizerBuilder.optimizer.beta1: unknown key; accepted: centered, epsilon, momentum, rho",
        ),
    ],
)
def test_optimizer_config_errors(cfg, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_optimizer(cfg, 0.1, Net())


def test_left_out_keys_take_paddledetection_defaults():
    # LearningRate {} = base_lr 0.01, LinearWarmup(500 iters from 1/3), PiecewiseDecay with
    # gamma [0.1, 0.01] at epochs 8 and 11 (PaddleDetection 2.6's constructor defaults)
    lrs = lr_values(build_lr({}, steps_per_epoch=100, epoch_based=True), 1101)
    assert lrs[0] == pytest.approx(0.01 / 3)
    assert lrs[250] == pytest.approx(0.01 * (1 / 3 + (2 / 3) * 0.5))
    assert lrs[500] == pytest.approx(0.01) and lrs[799] == pytest.approx(0.01)
    assert lrs[800] == pytest.approx(0.001) and lrs[1100] == pytest.approx(0.0001)
    # OptimizerBuilder {} = Momentum 0.9 with L2 1e-4
    model = Net(with_norm=False)
    opt = build_optimizer({}, constant_lr(0.1), model)
    assert isinstance(opt, paddle.optimizer.Momentum)
    w0 = model.fc.weight.numpy().copy()
    zero_grad_step(model, opt)
    np.testing.assert_allclose(model.fc.weight.numpy(), w0 - 0.1 * 1e-4 * w0, rtol=1e-6)


def test_scalar_gamma_divides_by_ten_per_milestone():
    # PaddleDetection 2.6: gamma g gives base * g, base * g / 10, ...; a list gives base * g_i
    cfg = {
        "base_lr": 1.0,
        "schedulers": [{"name": "PiecewiseDecay", "gamma": 0.5, "milestones": [1, 2, 3]}],
    }
    assert lr_values(build_lr(cfg, 1, True), 4) == pytest.approx([1.0, 0.5, 0.05, 0.005])
    cfg["schedulers"][0]["gamma"] = [0.5, 0.5, 0.4]
    assert lr_values(build_lr(cfg, 1, True), 4) == pytest.approx([1.0, 0.5, 0.5, 0.4])


def grad_step(model, opt, coeff):
    """One step whose gradient on fc.weight is exactly ``coeff`` (loss = sum(w * coeff))."""
    loss = (model.fc.weight * paddle.to_tensor(coeff)).sum()
    loss.backward()
    opt.step()
    opt.clear_grad()


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.9, False), (0.5, True)])
def test_rmsprop_matches_hand_computed_update(momentum, centered):
    # Paddle's RMSProp (PaddleDetection's SSD optimizer, keys rho/epsilon/momentum/centered):
    # ms = rho ms + (1 - rho) g^2; mg = rho mg + (1 - rho) g (centered);
    # mom = momentum mom + lr g / sqrt(ms - mg^2 + eps); w -= mom
    paddle.seed(3)
    model = Net(with_norm=False)
    rho, eps, lr = 0.9, 1e-6, 0.01
    cfg = {
        "optimizer": {"type": "RMSProp", "rho": rho, "epsilon": eps, "momentum": momentum},
        "regularizer": None,
    }
    if centered:
        cfg["optimizer"]["centered"] = True
    opt = build_optimizer(cfg, constant_lr(lr), model)
    assert isinstance(opt, paddle.optimizer.RMSProp)
    w = model.fc.weight.numpy().astype(np.float64)
    ms, mg, mom = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    rng = np.random.default_rng(0)
    for _ in range(3):
        g = rng.normal(size=w.shape).astype(np.float32)
        grad_step(model, opt, g)
        ms = rho * ms + (1 - rho) * g**2
        mg = rho * mg + (1 - rho) * g if centered else mg
        mom = momentum * mom + lr * g / np.sqrt(ms - mg**2 + eps)
        w = w - mom
    np.testing.assert_allclose(model.fc.weight.numpy(), w, rtol=1e-5, atol=1e-7)


def test_rmsprop_defaults_are_paddles_and_decay_applies():
    # momentum 0, rho 0.95, epsilon 1e-6 (Paddle's defaults; PaddleDetection passes them on);
    # with a zero gradient only the L2 term moves the weights: g = factor * w
    paddle.seed(1)
    model = Net(with_norm=False)
    cfg = {"optimizer": {"type": "RMSProp"}, "regularizer": {"type": "L2", "factor": 0.5}}
    opt = build_optimizer(cfg, constant_lr(0.1), model)
    w0 = model.fc.weight.numpy().astype(np.float64)
    zero_grad_step(model, opt)
    g = 0.5 * w0
    expected = w0 - 0.1 * g / np.sqrt(0.05 * g**2 + 1e-6)
    np.testing.assert_allclose(model.fc.weight.numpy(), expected, rtol=1e-5)


def test_rmsprop_state_survives_checkpoint(tmp_path):
    from ppdet.engine.checkpoint import optimizer_state, set_optimizer_state

    paddle.seed(2)
    model = Net(with_norm=False)
    cfg = {"optimizer": {"type": "RMSProp", "momentum": 0.9}, "regularizer": None}
    opt = build_optimizer(cfg, constant_lr(0.01), model)
    grad_step(model, opt, np.ones([3, 2], np.float32))
    paddle.save(optimizer_state(opt, model), str(tmp_path / "opt.pdopt"))
    state = paddle.load(str(tmp_path / "opt.pdopt"))
    assert "@fc.weight_mean_square_0" in state and "@fc.weight_momentum_0" in state
    other = Net(with_norm=False)
    other.set_state_dict(model.state_dict())
    opt2 = build_optimizer(cfg, constant_lr(0.01), other)
    set_optimizer_state(opt2, other, state)
    g = np.full([3, 2], 0.5, np.float32)
    grad_step(model, opt, g)
    grad_step(other, opt2, g)
    np.testing.assert_allclose(other.fc.weight.numpy(), model.fc.weight.numpy(), rtol=1e-6)
