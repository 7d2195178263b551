"""Convert the v0.1 model zoo's legacy checkpoints (fluid 1.x ``save_persistables``: one
LoDTensor file per variable, in a ``.tar``) into PaddleDetection 2.x state dicts.

    state, report = convert("faster_rcnn_r50_1x.tar")        # model guessed from the names
    print(report.summary())
    load_state_dict(model, state, "faster_rcnn_r50_1x.tar")   # ppdet.zoo.weights, strict

Optimizer / LR state (``*_velocity_0``, ``*_momentum_0``, ``*_mean_square_0``, ``learning_rate*``,
``@LR_DECAY_COUNTER@``) is dropped and reported; unknown variables are reported (warning);
expected variables that are missing are an error. Layouts need no transposes; the class
conventions differ (legacy: background at index 0, class-specific boxes incl. background) and
are rewritten, affine-channel norms become BN with ``_mean`` 0 and ``_variance`` 1 - 1e-5.
``LegacyModel.behaviour`` lists what the 2.x model must do to reproduce the legacy numbers.

The ImageNet-pretrained backbones of that era (``ResNet50_cos_pretrained.tar``, ...; keys
``*_pretrained``, see ``legacy_models``) convert the same way to ``backbone.``-prefixed names:
their BN statistics are real and copied, their classifier is skipped and listed in the report.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from ppdet.zoo.legacy_families import FAMILIES
from ppdet.zoo.legacy_format import LegacyError, looks_like_record, parse_record, serialize_record
from ppdet.zoo.legacy_models import LEGACY_MODELS, LegacyModel, detect, is_classifier
from ppdet.zoo.legacy_rules import AFFINE_VAR, Rule

__all__ = [
    "LEGACY_MODELS",
    "LegacyError",
    "LegacyModel",
    "LegacyReport",
    "convert",
    "convert_shapes",
    "detect_model",
    "is_legacy",
    "legacy_shapes",
    "map_shapes",
    "read_legacy",
    "to_legacy",
    "write_legacy_tar",
]


# fluid 1.x optimizer accumulators: Momentum ``_velocity_0``; RMSProp ``_momentum_0``,
# ``_mean_square_0``, ``_mean_grad_0``; Adam ``_moment1_0``, ``_moment2_0``, ``_beta1_pow_acc_0``
_OPTIMIZER = re.compile(
    r"(_velocity_0|_moment\d?_0|_momentum_0|_mean_square_0|_mean_grad_0|_beta[12]_pow_acc_0)$"
    r"|^learning_rate|^@LR_DECAY_COUNTER@$"
)


@dataclasses.dataclass
class LegacyReport:
    source: str
    model: str
    target: str
    num_classes: int
    converted: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # legacy, 2.x
    transformed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # 2.x, op
    synthesized: list[str] = dataclasses.field(default_factory=list)  # affine BN stats
    dropped: list[str] = dataclasses.field(default_factory=list)  # optimizer / LR state
    unmapped: list[str] = dataclasses.field(default_factory=list)  # unknown variables (warn)
    skipped: list[str] = dataclasses.field(default_factory=list)  # members that are no record
    missing: list[str] = dataclasses.field(default_factory=list)  # expected, absent (error)
    classifier: list[str] = dataclasses.field(default_factory=list)  # ImageNet fc, not converted
    renamed: dict[str, str] = dataclasses.field(default_factory=dict)  # auto names normalised
    behaviour: dict = dataclasses.field(default_factory=dict)

    def summary(self, limit: int = 6) -> str:
        def names(items) -> str:
            items = list(items)
            more = f", ... (+{len(items) - limit})" if len(items) > limit else ""
            return f" [{', '.join(items[:limit])}{more}]" if items else ""

        return (
            f"legacy {self.source} ({self.model} -> {self.target}, {self.num_classes} classes): "
            f"converted {len(self.converted)}, transformed {len(self.transformed)}, affine stats "
            f"{len(self.synthesized)}, dropped optimizer/LR {len(self.dropped)}, "
            + (
                f"classifier skipped {len(self.classifier)}{names(self.classifier)}, "
                if self.classifier
                else ""
            )
            + f"unmapped {len(self.unmapped)}{names(self.unmapped)}, skipped {len(self.skipped)}"
            f"{names(self.skipped)}, missing {len(self.missing)}{names(self.missing)}"
        )


# ---------------------------------------------------------------- transforms


def _forward(op: str, x: np.ndarray, arg: tuple) -> np.ndarray:
    """legacy tensor -> 2.x tensor (see legacy_rules for the ops)."""
    if op == "copy":
        return x
    if op == "bg_last":  # [..., C+1]: class 0 (background) -> last
        return np.concatenate([x[..., 1:], x[..., :1]], axis=-1)
    if op == "drop_bg_delta":  # [..., 4(C+1)] -> [..., 4C]
        return x[..., 4:]
    if op == "agnostic_slot1":  # [..., 8] -> [..., 4]
        return x[..., 4:8]
    if op == "drop_bg":  # [C+1, ...] -> [C, ...]
        return x[1:]
    if op == "anchor_perm":  # [A*K, ...]: channel a*K + k
        a = len(arg)
        y = x.reshape(a, x.shape[0] // a, *x.shape[1:])  # [A, K, ...]
        return y[list(arg)].reshape(x.shape)
    if op == "ssd_conf":  # [p*(C+1), ...]: per prior, class 0 -> last
        p = arg[0]
        y = x.reshape(p, x.shape[0] // p, *x.shape[1:])  # [p, C+1, ...]
        return np.concatenate([y[:, 1:], y[:, :1]], axis=1).reshape(x.shape)
    raise ValueError(f"unknown op {op}")


def _inverse(op: str, x: np.ndarray, arg: tuple) -> np.ndarray:
    """2.x tensor -> legacy tensor (dropped background slots are written as zeros)."""
    if op == "copy":
        return x
    if op == "bg_last":
        return np.concatenate([x[..., -1:], x[..., :-1]], axis=-1)
    if op in ("drop_bg_delta", "agnostic_slot1"):
        return np.concatenate([np.zeros_like(x[..., :4]), x], axis=-1)
    if op == "drop_bg":
        return np.concatenate([np.zeros_like(x[:1]), x], axis=0)
    if op == "anchor_perm":
        inv = np.argsort(arg)
        y = x.reshape(len(arg), x.shape[0] // len(arg), *x.shape[1:])
        return y[inv].reshape(x.shape)
    if op == "ssd_conf":
        p = arg[0]
        y = x.reshape(p, x.shape[0] // p, *x.shape[1:])
        return np.concatenate([y[:, -1:], y[:, :-1]], axis=1).reshape(x.shape)
    raise ValueError(f"unknown op {op}")


def _forward_shape(op: str, shape: tuple[int, ...], arg: tuple) -> tuple[int, ...]:
    if op in ("bg_last", "copy", "anchor_perm", "ssd_conf"):
        return tuple(shape)
    if op == "drop_bg_delta":
        return (*shape[:-1], shape[-1] - 4)
    if op == "agnostic_slot1":
        return (*shape[:-1], 4)
    if op == "drop_bg":
        return (shape[0] - 1, *shape[1:])
    raise ValueError(f"unknown op {op}")


def _check_classes(rule: Rule, shape: tuple[int, ...], num_classes: int, source: str) -> None:
    """The class axis of a class-dependent layer must fit ``num_classes``."""
    c = num_classes
    expect = {"bg_last": c + 1, "drop_bg_delta": 4 * (c + 1), "agnostic_slot1": 8, "drop_bg": c + 1}
    if rule.op in expect:
        got = shape[-1] if rule.op != "drop_bg" else shape[0]
        if got != expect[rule.op]:
            raise LegacyError(
                f"{source}: {rule.legacy} has shape {list(shape)}, expected {expect[rule.op]} "
                f"class outputs for {c} classes; pass the right num_classes/model"
            )
    elif rule.op in ("anchor_perm", "ssd_conf"):
        groups = len(rule.arg) if rule.op == "anchor_perm" else rule.arg[0]
        if shape[0] % groups:
            raise LegacyError(
                f"{source}: {rule.legacy} has {shape[0]} channels, not a multiple of {groups}"
            )


# ---------------------------------------------------------------- names -> model, num_classes


def _normalize_auto_names(names: Iterable[str]) -> dict[str, str]:
    """Renames of auto-generated variable names, by every family that has such names (SSD)."""
    names = set(names)
    out: dict[str, str] = {}
    for family in FAMILIES.values():
        if family.auto_names is not None:
            out.update(family.auto_names(names))
    return out


def detect_model(names: Iterable[str], shapes: Mapping[str, tuple] | None = None) -> str:
    """The ``LEGACY_MODELS`` key whose family and architecture fit these variable names.

    1x/2x schedule siblings convert identically; the first listed (1x) key is returned.
    ``shapes`` ({name: shape}) separates ResNeXt-vd from ResNet-vd and VOC from COCO YOLOv3-R34.
    Names without any neck/head variable are an ImageNet-pretrained backbone
    (``*_pretrained`` keys). The families (``legacy_families``) are asked in order.
    """
    return detect({n for n in names if not _OPTIMIZER.search(n)}, shapes)


def _infer_classes(model: LegacyModel, shapes: Mapping[str, tuple]) -> int | None:
    """Number of foreground classes from the class layer's shape (the family's class probe)."""
    return model.family.classes(shapes)


def _hint(source: str) -> str:
    """The file's basename without .tar/.tar.gz/.tgz: a ``LEGACY_MODELS`` key when named so."""
    base = os.path.basename(source.rstrip("/" + os.sep))
    for ext in (".tar.gz", ".tgz", ".tar"):
        base = base.removesuffix(ext)
    return base


def _plan(
    shapes: Mapping[str, tuple],
    source: str,
    model: str | None,
    num_classes: int | None,
    strict: bool,
    report: LegacyReport | None = None,
) -> LegacyReport:
    """Which model, how many classes, which names are expected/unmapped/classifier/missing.

    ``shapes``: {legacy name: shape}, optimizer state already removed, auto names normalised.
    """
    if model is None:
        model = detect_model(shapes, shapes)
        found, hint = LEGACY_MODELS[model], LEGACY_MODELS.get(_hint(source))
        if hint and (hint.arch, hint.target) == (found.arch, found.target):
            model = hint.key  # ResNet50_pretrained.tar: its own key, not ResNet50_cos_pretrained
    if model not in LEGACY_MODELS:
        raise LegacyError(f"unknown legacy model {model!r}; one of {', '.join(LEGACY_MODELS)}")
    spec = LEGACY_MODELS[model]
    inferred = _infer_classes(spec, shapes)
    if num_classes is None:
        num_classes = inferred if inferred else spec.num_classes
    elif inferred and inferred != num_classes:
        raise LegacyError(
            f"{source}: the class layers hold {inferred} classes, not num_classes={num_classes}; "
            "pass the checkpoint's class count"
        )
    report = report or LegacyReport(source, "", "", 0)
    report.model, report.target, report.num_classes = spec.key, spec.target, num_classes
    report.behaviour = dict(spec.behaviour)
    expected = {r.legacy for r in spec.rules() if r.legacy}
    extra = sorted(n for n in shapes if n not in expected)
    backbone = spec.arch.family == "backbone"
    report.classifier = [n for n in extra if backbone and is_classifier(n)]
    report.unmapped = [n for n in extra if n not in report.classifier]
    report.missing = sorted(n for n in expected if n not in shapes)
    if report.missing and strict:
        raise LegacyError(
            f"{source}: not a complete {spec.key} checkpoint: {report.summary().split(': ', 1)[1]}"
        )
    return report


def convert_shapes(
    shapes: Mapping[str, tuple],
    model: str | None = None,
    num_classes: int | None = None,
    strict: bool = True,
    source: str = "<shapes>",
) -> tuple[dict[str, tuple[int, ...]], LegacyReport]:
    """``convert`` without tensor data: {legacy name: shape} -> ({2.x name: shape}, report).

    Optimizer/LR names are dropped, the classifier of a pretrained backbone is skipped, and
    class axes are checked exactly as ``convert`` does (for checks and tests).
    """
    dropped = sorted(n for n in shapes if _OPTIMIZER.search(n))
    renames = _normalize_auto_names(shapes)
    shapes = {renames.get(k, k): tuple(v) for k, v in shapes.items() if k not in dropped}
    report = LegacyReport(source, "", "", 0, dropped=dropped)
    report.renamed = {a: b for a, b in renames.items() if a != b}
    report = _plan(shapes, source, model, num_classes, strict, report)
    out = {}
    for rule in LEGACY_MODELS[report.model].rules():
        src = rule.legacy or rule.src
        if src not in shapes:
            continue
        if rule.legacy:
            _check_classes(rule, shapes[src], report.num_classes, source)
            out[rule.target] = _forward_shape(rule.op, shapes[src], rule.arg)
            report.converted.append((rule.legacy, rule.target))
        else:
            out[rule.target] = shapes[src]
            report.synthesized.append(rule.target)
    return out, report


def map_shapes(
    shapes: Mapping[str, tuple], model: str | None = None, num_classes: int | None = None
) -> dict[str, tuple[int, ...]]:
    """{legacy name: shape} -> {2.x name: shape}, without any tensor data (for checks/tests)."""
    return convert_shapes(shapes, model, num_classes, strict=False)[0]


def legacy_shapes(model: str, shapes: Mapping[str, tuple]) -> dict[str, tuple[int, ...]]:
    """The inverse of ``map_shapes``: {2.x name: shape} -> {legacy name: shape} for ``model``."""
    grow = {
        "drop_bg_delta": lambda s: (*s[:-1], s[-1] + 4),
        "agnostic_slot1": lambda s: (*s[:-1], 8),
        "drop_bg": lambda s: (s[0] + 1, *s[1:]),
    }
    return {
        r.legacy: grow.get(r.op, tuple)(tuple(shapes[r.target]))
        for r in LEGACY_MODELS[model].rules()
        if r.legacy and r.target in shapes
    }


# ---------------------------------------------------------------- reading


def _top_prefix(names: list[str]) -> str:
    """``"<top>/"`` when every member sits in one top folder (how v0.1 tars are packed), else ""."""
    tops = {n.split("/", 1)[0] if "/" in n else None for n in names}
    return f"{tops.pop()}/" if len(tops) == 1 and None not in tops else ""


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_legacy(path: str, skip: Iterable[str] | None = None) -> Iterator[tuple[str, str, object]]:
    """Stream (variable name, member path, reader) over a tar (``r|*``, no extraction) or a
    directory; ``reader()`` returns the member's bytes. Variable names are relative to the
    top folder."""
    if os.path.isdir(path):
        files = []
        for root, _, fnames in os.walk(path):
            files += [
                os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/") for f in fnames
            ]
        for rel in sorted(files):
            full = os.path.join(path, rel)
            yield rel, full, (lambda full=full: _read_file(full))
        return
    if not os.path.isfile(path):
        raise LegacyError(f"legacy checkpoint not found: {path}")
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.removeprefix("./")
                fobj = tar.extractfile(member)
                yield name, f"{path}:{member.name}", (lambda f=fobj: f.read())
    except (tarfile.TarError, EOFError, OSError) as e:
        raise LegacyError(f"{path}: not a readable tar ({e}); fetch it again") from None


def is_legacy(path: str) -> bool:
    """A .tar/.tar.gz or directory of fluid variable files (and no .pdparams)."""
    try:
        seen = 0
        for name, _, read in read_legacy(path):
            if name.endswith((".pdparams", ".pdmodel", ".pdopt")):
                return False
            if seen < 20:
                seen += 1
                if looks_like_record(read()[:64]):
                    return True
        return False
    except LegacyError:
        return False


# ---------------------------------------------------------------- convert / inverse


def convert(
    path: str, model: str | None = None, num_classes: int | None = None, strict: bool = True
) -> tuple[dict[str, np.ndarray], LegacyReport]:
    """Read a legacy tar/directory and return ({2.x name: array}, report).

    ``model``: a ``LEGACY_MODELS`` key (guessed from the names when None). ``num_classes``:
    checked against the class layers (inferred from them when None). ``strict``: missing expected
    variables raise ``LegacyError`` (else they are only reported).
    """
    dropped, skipped, arrays = [], [], {}
    for name, where, read in read_legacy(path):
        if _OPTIMIZER.search(name.rsplit("/", 1)[-1]):
            dropped.append(name)  # never read: velocity files are as big as the weights
            continue
        data = read()
        if not looks_like_record(data[:64]):
            skipped.append(name)
            continue
        arrays[name] = parse_record(data, where)[0]
    if not arrays:
        raise LegacyError(f"{path}: no fluid variable files inside; is this a v0.1 checkpoint?")
    strip = _top_prefix(list(arrays) + dropped + skipped)
    arrays = {k[len(strip) :]: v for k, v in arrays.items()}
    dropped, skipped = [k[len(strip) :] for k in dropped], [k[len(strip) :] for k in skipped]
    renames = _normalize_auto_names(arrays)
    arrays = {renames.get(k, k): v for k, v in arrays.items()}
    report = LegacyReport(path, "", "", 0, dropped=dropped, skipped=skipped)
    report.renamed = {a: b for a, b in renames.items() if a != b}
    shapes = {k: v.shape for k, v in arrays.items()}
    report = _plan(shapes, path, model, num_classes, strict, report)
    rules, num_classes = LEGACY_MODELS[report.model].rules(), report.num_classes
    state: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule.legacy is None:
            if rule.src in arrays:
                fill = 0.0 if rule.op == "zeros" else AFFINE_VAR
                state[rule.target] = np.full(arrays[rule.src].shape, fill, np.float32)
                report.synthesized.append(rule.target)
            continue
        if rule.legacy not in arrays:
            continue
        x = arrays[rule.legacy]
        _check_classes(rule, x.shape, num_classes, path)
        if x.dtype.kind == "f" and x.dtype != np.float32:
            x = x.astype(np.float32)
        state[rule.target] = np.ascontiguousarray(_forward(rule.op, x, rule.arg))
        report.converted.append((rule.legacy, rule.target))
        if rule.op != "copy":
            report.transformed.append((rule.target, rule.op))
    return state, report


def to_legacy(state: Mapping[str, np.ndarray], model: str) -> dict[str, np.ndarray]:
    """The inverse map: a 2.x state dict -> {legacy name: array} as v0.1 would have saved it.

    Affine-channel layers fold the BN statistics into scale/offset
    (scale = w / sqrt(var + 1e-5), offset = b - mean * scale); dropped background slots are 0.
    """
    rules = LEGACY_MODELS[model].rules()
    out = {}
    stats = {r.target: r for r in rules if r.legacy is None}
    for rule in rules:
        if rule.legacy is None:
            continue
        x = np.asarray(state[rule.target])
        norm = rule.target.rsplit(".", 1)[0]
        if f"{norm}._mean" in stats:  # affine weight/bias
            mean, var = state[f"{norm}._mean"], state[f"{norm}._variance"]
            w = state[f"{norm}.weight"] / np.sqrt(var + np.float32(1e-5))
            x = w if rule.target.endswith(".weight") else state[f"{norm}.bias"] - mean * w
        out[rule.legacy] = _inverse(rule.op, x, rule.arg).astype(x.dtype)
    return out


def write_legacy_tar(
    tensors: Mapping[str, np.ndarray],
    path: str,
    top: str | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> None:
    """Write {variable name: array} as a v0.1-style tar (``top/<name>`` records; ``extra``:
    raw members, e.g. a README). Used by tests and to hand-make fixtures."""
    top = top or os.path.basename(path).split(".tar")[0]
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w:gz" if path.endswith("gz") else "w") as tar:
        items = [(n, serialize_record(a)) for n, a in tensors.items()] + list((extra or {}).items())
        for name, data in items:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)
