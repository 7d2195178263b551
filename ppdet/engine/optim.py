r"""Learning-rate schedule and optimizer from PaddleDetection-shaped config sections.

```yaml
LearningRate:
  base_lr: 0.001
  schedulers:
  - {name: PiecewiseDecay, gamma: 0.1, milestones: [216, 243]}   # or CosineDecay
  - {name: LinearWarmup, start_factor: 0.0, steps: 4000}
OptimizerBuilder:
  optimizer: {type: Momentum, momentum: 0.9}                      # or RMSProp, Adam, AdamW
  regularizer: {type: L2, factor: 0.0005}
  clip_grad_by_norm: null
  param_rules:                     # optional, first match wins (e.g. PaddleDetection v0.1)
  - {match: '^(neck|rpn_head)\..*\.bias$', lr_mult: 2.0, weight_decay: false}
```

A key left out takes PaddleDetection 2.6's default (``LEARNING_RATE_DEFAULTS``,
``SCHEDULER_DEFAULTS``, ``OPTIMIZER_BUILDER_DEFAULTS``; optimizer arguments default to Paddle's),
so a config means the same here and there.

The schedule is one ``LRScheduler`` stepped once per iteration. Its value at iteration ``t``
is a pure function of ``t`` (see ``WarmupDecayLR``), so the scheduler's ``state_dict``
(``last_epoch`` = iteration) is all a resumed run needs. As in 2.6, CosineDecay after a
LinearWarmup of W steps starts its cosine at iteration W and ends it at ``max_epochs`` (minus
``last_plateau_epochs``); PiecewiseDecay's milestones stay where they are. Decay milestones (and CosineDecay's
``max_epochs``) count epochs in an epoch-based run and iterations in an iteration-based one;
warmup ``steps`` always count iterations (``epochs`` counts epochs).
"""

from __future__ import annotations

import bisect
import math
import re
from typing import Any

import paddle
from paddle.optimizer.lr import LRScheduler

from ppdet.config.errors import ConfigError
from ppdet.config.sections import section_check

_NUMBER = (int, float)


# ---------------------------------------------------------------- config checking helpers
def _check_keys(section: Any, path: str, allowed: dict[str, tuple], required=()) -> dict:
    """``section`` must be a dict whose keys are in ``allowed`` (key -> accepted types)."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(section).__name__}")
    for key, value in section.items():
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown key; accepted: {', '.join(sorted(allowed))}")
        types = allowed[key]
        is_bool = isinstance(value, bool)  # bool is an int subclass: reject unless listed
        ok = isinstance(value, types) and (bool in types or not is_bool)
        if not ok:
            names = "/".join(t.__name__ for t in types)
            raise ConfigError(f"{path}.{key}: expected {names}, got {value!r}")
    for key in required:
        if section.get(key) is None:
            raise ConfigError(f"{path}.{key}: required")
    return section


def _number_list(value: Any, path: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, _NUMBER) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{path}: expected a list of numbers, got {value!r}")
    return [float(v) for v in value]


# ---------------------------------------------------------------- the schedule
class WarmupDecayLR(LRScheduler):
    """LR at iteration ``t`` (= ``last_epoch``), PaddleDetection 2.6's rules:

    - piecewise decay: ``decay(t) * warmup(t)``;
    - cosine decay: ``base_lr * warmup(t)`` during the warmup (t < W = ``warmup_steps``), then
      a cosine from ``base_lr`` at t = W to ``min_lr`` at t = ``cosine_end``, then ``min_lr``:
      ``min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - W) / (cosine_end - W))) / 2``.

    Args:
        base_lr: learning rate before any decay.
        boundaries, values: piecewise decay; ``values[i]`` holds from ``boundaries[i-1]``
            (inclusive) to ``boundaries[i]`` (exclusive) iterations; ``len(values) ==
            len(boundaries) + 1``. Used when ``cosine_end`` is None.
        cosine_end: the iteration at which the cosine reaches ``min_lr`` (2.6: max_epochs *
            steps_per_epoch minus the plateau). A warmup as long or longer leaves ``min_lr``
            after it.
        warmup_steps, warmup_start_factor: ``warmup(t)`` rises linearly from the start
            factor at t = 0 to 1 at t = warmup_steps, and stays 1.
    """

    def __init__(
        self,
        base_lr: float,
        boundaries: list[int] | None = None,
        values: list[float] | None = None,
        cosine_end: int | None = None,
        min_lr: float = 0.0,
        warmup_steps: int = 0,
        warmup_start_factor: float = 1.0,
        last_epoch: int = -1,
    ):
        self.boundaries = list(boundaries or [])
        self.values = list(values or [base_lr])
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError("piecewise decay needs len(values) == len(boundaries) + 1")
        self.cosine_end = cosine_end
        self.min_lr = float(min_lr)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_factor = float(warmup_start_factor)
        super().__init__(float(base_lr), last_epoch)

    def decay(self, t: int) -> float:
        """The decayed LR at iteration ``t``, before warmup (cosine: from the warmup's end)."""
        if self.cosine_end is not None:
            span = self.cosine_end - self.warmup_steps
            done = t - self.warmup_steps
            if done < 0:
                return self.base_lr
            if done >= span:
                return self.min_lr
            cos = 0.5 * (1.0 + math.cos(math.pi * done / span))
            return self.min_lr + (self.base_lr - self.min_lr) * cos
        return self.values[bisect.bisect_right(self.boundaries, t)]

    def warmup(self, t: int) -> float:
        """The warmup factor at iteration ``t``, in [start_factor, 1]."""
        if t >= self.warmup_steps:
            return 1.0
        alpha = t / self.warmup_steps
        return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * alpha

    def get_lr(self) -> float:
        t = max(self.last_epoch, 0)
        return self.decay(t) * self.warmup(t)


_SCHEDULER_KEYS: dict[str, dict[str, tuple]] = {
    "PiecewiseDecay": {
        "name": (str,),
        "gamma": (int, float, list),
        "milestones": (list,),
        "values": (list, type(None)),
        "use_warmup": (bool,),
    },
    "CosineDecay": {
        "name": (str,),
        "max_epochs": (int, float),
        "min_lr_ratio": (int, float),
        "min_lr": (int, float, type(None)),
        "last_plateau_epochs": (int,),
        "use_warmup": (bool,),
    },
    "LinearWarmup": {
        "name": (str,),
        "steps": (int,),
        "start_factor": (int, float),
        "epochs": (int, float, type(None)),
        "epochs_first": (bool,),
    },
}

# What a key left out of a scheduler means: PaddleDetection 2.6's constructor defaults (plus
# our own ``min_lr`` and ``epochs_first``). PiecewiseDecay's ``gamma`` list gives the LR after
# each milestone as a factor of base_lr; a number g gives g, g/10, g/100, ... (2.6's rule).
SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "PiecewiseDecay": {
        "gamma": [0.1, 0.01],
        "milestones": [8, 11],
        "values": None,
        "use_warmup": True,
    },
    "CosineDecay": {
        "max_epochs": 1000,
        "min_lr_ratio": 0.0,
        "min_lr": None,
        "last_plateau_epochs": 0,
        "use_warmup": True,
    },
    "LinearWarmup": {"steps": 500, "start_factor": 1.0 / 3.0, "epochs": None, "epochs_first": True},
}
# A LearningRate section without ``schedulers`` gets PaddleDetection's: PiecewiseDecay and
# LinearWarmup with the defaults above. ``schedulers: []`` is a constant LR.
LEARNING_RATE_DEFAULTS: dict[str, Any] = {
    "base_lr": 0.01,
    "schedulers": [{"name": "PiecewiseDecay"}, {"name": "LinearWarmup"}],
}


def build_lr(cfg_section: dict, steps_per_epoch: int, epoch_based: bool) -> WarmupDecayLR:
    """The per-iteration LR scheduler described by the ``LearningRate`` section.

    Args:
        cfg_section: ``{base_lr, schedulers: [decay, (warmup)]}`` (defaults:
            ``LEARNING_RATE_DEFAULTS``, ``SCHEDULER_DEFAULTS``). Decays: PiecewiseDecay
            (``milestones``, ``gamma``: a number g for g, g/10, g/100, ... or one factor of
            base_lr per milestone, or explicit ``values``), CosineDecay (``max_epochs``,
            ``min_lr_ratio`` or ``min_lr``, ``last_plateau_epochs``). Warmup: LinearWarmup
            (``steps``, ``start_factor``, or ``epochs``). ``use_warmup: false`` on the decay
            disables warmup.
        steps_per_epoch: iterations per epoch (used for epoch units and warmup ``epochs``).
        epoch_based: milestones/max_epochs count epochs (True) or iterations (False).
    Raises:
        ConfigError (a ValueError) naming the key path, e.g. ``LearningRate.schedulers[0].gamma``.
    """
    root = "LearningRate"
    sec = _check_keys(cfg_section, root, {"base_lr": _NUMBER, "schedulers": (list,)})
    sec = {**LEARNING_RATE_DEFAULTS, **sec}
    base_lr = float(sec["base_lr"])
    if base_lr < 0:
        raise ConfigError(f"{root}.base_lr: must be >= 0, got {base_lr}")
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    unit = steps_per_epoch if epoch_based else 1

    kwargs: dict[str, Any] = {"base_lr": base_lr}
    decay_seen = warmup_seen = False
    use_warmup = True
    warmup: dict[str, Any] = {}
    for i, sched in enumerate(sec["schedulers"] or []):
        path = f"{root}.schedulers[{i}]"
        name = sched.get("name") if isinstance(sched, dict) else None
        if name not in _SCHEDULER_KEYS:
            raise ConfigError(
                f"{path}.name: unknown scheduler {name!r}; accepted: {', '.join(_SCHEDULER_KEYS)}"
            )
        given = _check_keys(sched, path, _SCHEDULER_KEYS[name])
        sched = {**SCHEDULER_DEFAULTS[name], **given}
        if name == "LinearWarmup":
            if warmup_seen:
                raise ConfigError(f"{path}: only one warmup scheduler is allowed")
            warmup_seen = True
            warmup = _warmup_kwargs(sched, given, path, steps_per_epoch)
            continue
        if decay_seen:
            raise ConfigError(f"{path}: only one decay scheduler is allowed")
        decay_seen = True
        use_warmup = sched["use_warmup"]
        if name == "PiecewiseDecay":
            kwargs.update(_piecewise_kwargs(sched, path, base_lr, unit))
        else:
            kwargs.update(_cosine_kwargs(sched, given, path, base_lr, unit))
    if use_warmup:
        kwargs.update(warmup)
    return WarmupDecayLR(**kwargs)


def _piecewise_kwargs(sched: dict, path: str, base_lr: float, unit: int) -> dict[str, Any]:
    milestones = _number_list(sched["milestones"], f"{path}.milestones")
    if milestones != sorted(milestones):
        raise ConfigError(f"{path}.milestones: must be increasing, got {milestones}")
    boundaries = [int(round(m * unit)) for m in milestones]
    if sched["values"] is not None:
        values = _number_list(sched["values"], f"{path}.values")
        if len(values) != len(milestones) + 1:
            raise ConfigError(f"{path}.values: needs len(milestones) + 1 = {len(milestones) + 1}")
        return {"boundaries": boundaries, "values": values}
    gamma = sched["gamma"]
    if isinstance(gamma, list):
        factors = _number_list(gamma, f"{path}.gamma")
        if len(factors) != len(milestones):
            raise ConfigError(f"{path}.gamma: a list needs one factor per milestone")
    else:
        factors = [float(gamma) / 10**k for k in range(len(milestones))]
    return {"boundaries": boundaries, "values": [base_lr] + [base_lr * f for f in factors]}


def _cosine_kwargs(
    sched: dict, given: dict, path: str, base_lr: float, unit: int
) -> dict[str, Any]:
    max_epochs = sched["max_epochs"]
    plateau = sched["last_plateau_epochs"]
    if not 0 <= plateau < max_epochs:
        raise ConfigError(f"{path}.last_plateau_epochs: must be in [0, max_epochs)")
    if sched["min_lr"] is not None:
        if "min_lr_ratio" in given:
            raise ConfigError(f"{path}.min_lr: give min_lr or min_lr_ratio, not both")
        min_lr = float(sched["min_lr"])
    else:
        min_lr = base_lr * float(sched["min_lr_ratio"])
    return {"cosine_end": int(round((max_epochs - plateau) * unit)), "min_lr": min_lr}


def _warmup_kwargs(sched: dict, given: dict, path: str, steps_per_epoch: int) -> dict[str, Any]:
    """``sched``: the LinearWarmup keys with defaults filled in; ``given``: as written."""
    steps = sched["steps"]
    if sched["epochs"] is not None and (sched["epochs_first"] or "steps" not in given):
        steps = int(round(sched["epochs"] * steps_per_epoch))
    if steps < 0:
        raise ConfigError(f"{path}.steps: must be >= 0, got {steps}")
    start = float(sched["start_factor"])
    return {"warmup_steps": steps, "warmup_start_factor": start}


# ---------------------------------------------------------------- the optimizer
# Optimizer types and the keys each accepts: Paddle's own argument names (PaddleDetection
# passes them through), so a key left out takes Paddle's default.
_OPTIMIZERS: dict[str, type] = {
    "Momentum": paddle.optimizer.Momentum,
    "RMSProp": paddle.optimizer.RMSProp,
    "Adam": paddle.optimizer.Adam,
    "AdamW": paddle.optimizer.AdamW,
}
_OPTIMIZER_KEYS: dict[str, dict[str, tuple]] = {
    "Momentum": {"type": (str,), "momentum": _NUMBER, "use_nesterov": (bool,)},
    "RMSProp": {
        "type": (str,),
        "rho": _NUMBER,
        "epsilon": _NUMBER,
        "momentum": _NUMBER,
        "centered": (bool,),
    },
    "Adam": {"type": (str,), "beta1": _NUMBER, "beta2": _NUMBER, "epsilon": _NUMBER},
    "AdamW": {
        "type": (str,),
        "beta1": _NUMBER,
        "beta2": _NUMBER,
        "epsilon": _NUMBER,
        "weight_decay": _NUMBER,
    },
}
# What a key left out of OptimizerBuilder means (PaddleDetection 2.6's defaults; the default
# regularizer is not applied to AdamW, which decays weights itself, as in 2.6).
OPTIMIZER_BUILDER_DEFAULTS: dict[str, Any] = {
    "optimizer": {"type": "Momentum", "momentum": 0.9},
    "regularizer": {"type": "L2", "factor": 0.0001},
    "clip_grad_by_norm": None,
    "clip_grad_by_value": None,
    "no_weight_decay_on_norm": False,
    "param_rules": [],
}
_REGULARIZERS = {"L2": paddle.regularizer.L2Decay, "L1": paddle.regularizer.L1Decay}
_NORM_TYPES = (
    paddle.nn.layer.norm._BatchNormBase,
    paddle.nn.LayerNorm,
    paddle.nn.GroupNorm,
    paddle.nn.layer.norm._InstanceNormBase,
)


def is_norm_layer(layer: paddle.nn.Layer) -> bool:
    """Paddle's norm layers, plus project ones whose class name ends in Norm/BN or is
    AffineChannel (e.g. FrozenBatchNorm, EvoNorm)."""
    name = type(layer).__name__
    if isinstance(layer, _NORM_TYPES):
        return True
    return name.endswith(("Norm", "BN")) or name == "AffineChannel"


def norm_parameter_names(model: paddle.nn.Layer) -> set[str]:
    """``Parameter.name`` of every parameter owned directly by a norm layer of ``model``."""
    names = set()
    for _, layer in model.named_sublayers(include_self=True):
        if is_norm_layer(layer):
            names.update(p.name for p in layer.parameters(include_sublayers=False))
    return names


def _param_rules(rules: Any, root: str) -> list[tuple[re.Pattern, float, bool]]:
    """The checked ``param_rules``: [(compiled ``match``, lr_mult, weight_decay)]."""
    path = f"{root}.param_rules"
    if not isinstance(rules, list):
        raise ConfigError(f"{path}: expected a list of {{match, lr_mult, weight_decay}}")
    out = []
    for i, rule in enumerate(rules):
        keys = {"match": (str,), "lr_mult": _NUMBER, "weight_decay": (bool,)}
        rule = _check_keys(rule, f"{path}[{i}]", keys, ("match",))
        try:
            pattern = re.compile(rule["match"])
        except re.error as e:
            raise ConfigError(f"{path}[{i}].match: not a regular expression ({e})") from None
        lr_mult = float(rule.get("lr_mult", 1.0))
        if lr_mult < 0:
            raise ConfigError(f"{path}[{i}].lr_mult must be >= 0, got {lr_mult}")
        out.append((pattern, lr_mult, bool(rule.get("weight_decay", True))))
    return out


def param_groups(
    model: paddle.nn.Layer,
    rules: list[tuple[re.Pattern, float, bool]],
    no_decay: set[str],
    root: str = "OptimizerBuilder",
) -> list[dict]:
    """The trainable parameters of ``model`` grouped by (LR multiplier, weight decay on/off).

    A parameter's multiplier is its own (``ParamAttr(learning_rate=...)``, 1 by default) unless
    the first rule whose ``match`` finds its structured name (``neck.fpn_inner_res5_sum.bias``)
    sets one; it is decayed unless its ``Parameter.name`` is in ``no_decay`` or that rule says
    ``weight_decay: false``. Groups carry ``learning_rate`` (Paddle's per-group multiplier,
    which replaces a parameter's own) and ``weight_decay: 0.0`` where not decayed. A rule that
    matches no trainable parameter is a ConfigError (a typo would silently do nothing).
    """
    groups: dict[tuple[float, bool], list] = {}
    used = [False] * len(rules)
    for name, param in model.named_parameters():
        if param.stop_gradient:
            continue
        lr_mult = float(param.optimize_attr.get("learning_rate", 1.0))
        decay = param.name not in no_decay
        for i, (pattern, rule_mult, rule_decay) in enumerate(rules):
            if pattern.search(name):
                used[i] = True
                lr_mult, decay = rule_mult, decay and rule_decay
                break
        groups.setdefault((lr_mult, decay), []).append(param)
    for i, (pattern, _, _) in enumerate(rules):
        if not used[i]:
            raise ConfigError(
                f"{root}.param_rules[{i}].match: {pattern.pattern!r} matches no trainable "
                "parameter of this model (names as in its state dict, e.g. neck.fpn_6.bias)"
            )
    return [
        {"params": params, "learning_rate": lr_mult, **({} if decay else {"weight_decay": 0.0})}
        for (lr_mult, decay), params in groups.items()
    ]


def build_optimizer(
    cfg_section: dict, lr: LRScheduler | float, model: paddle.nn.Layer | None
) -> paddle.optimizer.Optimizer | None:
    """The optimizer described by the ``OptimizerBuilder`` section, over ``model``'s
    trainable parameters.

    Args:
        cfg_section: ``optimizer: {type: Momentum|RMSProp|Adam|AdamW, ...}`` (Paddle's
            argument names and defaults, e.g. RMSProp ``rho`` 0.95, ``epsilon`` 1e-6,
            ``momentum`` 0, ``centered`` false), ``regularizer: {type: L2|L1, factor}``
            (coupled decay, added to the gradient; not for AdamW, which takes
            ``optimizer.weight_decay``), ``clip_grad_by_norm`` (global-norm clip),
            ``clip_grad_by_value``, ``no_weight_decay_on_norm`` (bool: norm-layer parameters
            get no decay), ``param_rules`` (``[{match: regex on state-dict names, lr_mult,
            weight_decay: bool}]``, first match wins: per-parameter LR multipliers and decay,
            see ``param_groups``). Keys left out: ``OPTIMIZER_BUILDER_DEFAULTS``.
        lr: the scheduler from ``build_lr`` (or a constant float).
        model: its trainable parameters are optimized; None only checks the section (None).
    Raises:
        ConfigError (a ValueError) naming the key path, e.g. ``OptimizerBuilder.optimizer.type``.
    """
    root = "OptimizerBuilder"
    given = _check_keys(
        cfg_section,
        root,
        {
            "optimizer": (dict,),
            "regularizer": (dict, type(None)),
            "clip_grad_by_norm": (int, float, type(None)),
            "clip_grad_by_value": (int, float, type(None)),
            "no_weight_decay_on_norm": (bool,),
            "param_rules": (list,),
        },
    )
    sec = {**OPTIMIZER_BUILDER_DEFAULTS, **given}
    opt_cfg = sec["optimizer"]
    opt_type = opt_cfg.get("type")
    if opt_type not in _OPTIMIZER_KEYS:
        raise ConfigError(
            f"{root}.optimizer.type: unknown optimizer {opt_type!r}; "
            f"accepted: {', '.join(_OPTIMIZER_KEYS)}"
        )
    _check_keys(opt_cfg, f"{root}.optimizer", _OPTIMIZER_KEYS[opt_type])
    opt_args = {k: v for k, v in opt_cfg.items() if k != "type"}

    regularizer = None
    if opt_type == "AdamW" and "regularizer" not in given:
        sec["regularizer"] = None  # 2.6 never applies a regularizer to AdamW
    if sec["regularizer"] is not None:
        path = f"{root}.regularizer"
        reg = _check_keys(
            sec["regularizer"], path, {"type": (str,), "factor": _NUMBER}, ("type", "factor")
        )
        if reg["type"] not in _REGULARIZERS:
            raise ConfigError(
                f"{path}.type: unknown regularizer {reg['type']!r}; "
                f"accepted: {', '.join(_REGULARIZERS)}"
            )
        if opt_type == "AdamW":
            raise ConfigError(
                f"{path}: AdamW decays weights itself; set {root}.optimizer.weight_decay instead"
            )
        regularizer = _REGULARIZERS[reg["type"]](float(reg["factor"]))

    if sec["clip_grad_by_norm"] is not None and sec["clip_grad_by_value"] is not None:
        raise ConfigError(f"{root}.clip_grad_by_value: give one of clip_grad_by_norm/_by_value")
    grad_clip = None
    if sec["clip_grad_by_norm"] is not None:
        grad_clip = paddle.nn.ClipGradByGlobalNorm(float(sec["clip_grad_by_norm"]))
    elif sec["clip_grad_by_value"] is not None:
        bound = abs(float(sec["clip_grad_by_value"]))
        grad_clip = paddle.nn.ClipGradByValue(max=bound, min=-bound)
    rules = _param_rules(sec["param_rules"], root)
    if model is None:
        return None

    no_decay = norm_parameter_names(model) if sec["no_weight_decay_on_norm"] else set()
    groups = param_groups(model, rules, no_decay, root)
    undecayed = {p.name for g in groups if "weight_decay" in g for p in g["params"]}
    if opt_type == "AdamW":  # AdamW decays by name: its groups only carry LR multipliers
        for g in groups:
            g.pop("weight_decay", None)
    if len(groups) == 1 and groups[0]["learning_rate"] == 1.0 and not undecayed:
        groups = groups[0]["params"]  # one plain list: no per-parameter settings at all
    if opt_type == "AdamW":
        return paddle.optimizer.AdamW(
            learning_rate=lr,
            parameters=groups,
            weight_decay=float(opt_args.pop("weight_decay", 0.01)),
            apply_decay_param_fun=(lambda name: name not in undecayed) if undecayed else None,
            grad_clip=grad_clip,
            **opt_args,
        )
    return _OPTIMIZERS[opt_type](
        learning_rate=lr,
        parameters=groups,
        weight_decay=regularizer,
        grad_clip=grad_clip,
        **opt_args,
    )


# ---------------------------------------------------------------- load-time checks
@section_check("LearningRate")
def check_lr_section(section: Any) -> None:
    """Check ``LearningRate`` when a config is loaded (the real schedule needs the data)."""
    build_lr(section, steps_per_epoch=1, epoch_based=True)


@section_check("OptimizerBuilder")
def check_optimizer_section(section: Any) -> None:
    """Check ``OptimizerBuilder`` when a config is loaded (the optimizer needs the model)."""
    build_optimizer(section, 0.0, model=None)
