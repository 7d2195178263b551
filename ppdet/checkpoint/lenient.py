"""Fit a checkpoint made for another model (an ImageNet-pretrained backbone, a detector with
other classes) onto a model, by name, the way PaddleDetection 2.x files expect.

Name rule (so PaddleDetection's pretrained files load unchanged): a checkpoint name ``w`` fills
the model parameter ``m`` when ``m == w`` or ``m`` ends with ``"." + w``; a checkpoint name
starting with ``backbone.res5`` may also fill ``...res5...`` without its ``backbone.`` (C4
detectors keep res5 in the box head). The longest matching checkpoint name wins, so an exact
full name always beats a bare suffix. Parameters whose shapes differ are skipped and reported.

Two guards make a wrong file fail loudly instead of training from a half-random backbone:
- the classifier of an ImageNet checkpoint (``fc.*``, ``fc_0.*``, ``out.*``, ...) is skipped and
  named in the report, not counted as a problem;
- a ResNet-style checkpoint of another depth or variant than the model's stops loading with a
  ``WeightsError`` naming both; so does one that fills fewer than half of the model's backbone
  parameters (another backbone or width).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ppdet.checkpoint.report import LoadReport, WeightsError

__all__ = ["match_names", "fit_state_dict", "describe_resnet"]

CLASSIFIER_HEADS = (
    "fc",
    "fc_0",
    "fc_1",
    "fc8",
    "out",
    "classifier",
    "last_conv",
    "fc_weights",
    "fc_offset",
)
MIN_BACKBONE_FRACTION = 0.5
RES5_PREFIX = "backbone.res5"

# blocks per stage (res2..res5) and block kind -> ResNet depth
RESNET_DEPTHS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
    ((3, 8, 36, 3), True): 152,
}
_BLOCK = re.compile(r"(?:^|\.)res([2-5])\.res\1([a-z]\d*)\.")


def match_names(model_names: list[str], file_names: list[str]) -> dict[str, str]:
    """{model name: checkpoint name} by the suffix rule above (longest checkpoint name wins)."""
    by_suffix: dict[str, str] = {}
    for w in file_names:
        by_suffix[w] = w
    for w in file_names:  # "backbone.res5..." also answers to "res5..." unless a real key has it
        if w.startswith(RES5_PREFIX):
            by_suffix.setdefault(w[len("backbone.") :], w)
    chosen = {}
    for m in model_names:
        parts = m.split(".")
        candidates = [by_suffix.get(".".join(parts[i:])) for i in range(len(parts))]
        found = [w for w in candidates if w is not None]
        if found:
            chosen[m] = max(found, key=len)
    return chosen


def _is_classifier(name: str) -> bool:
    head = name[len("backbone.") :] if name.startswith("backbone.") else name
    return head.split(".", 1)[0] in CLASSIFIER_HEADS


def describe_resnet(names) -> str | None:
    """ "ResNet-50 variant d" from ResNet-style parameter names, or None if they are not ResNet's."""
    blocks: dict[str, set] = {}
    bottleneck = False
    for n in names:
        hit = _BLOCK.search(n)
        if hit:
            blocks.setdefault(hit.group(1), set()).add(hit.group(2))
            bottleneck = bottleneck or ".branch2c." in n
    if not blocks:
        return None
    counts = tuple(len(blocks.get(s, ())) for s in "2345")
    depth = RESNET_DEPTHS.get((counts, bottleneck))
    what = f"ResNet-{depth}" if depth else f"a ResNet with {list(counts)} blocks in res2..res5"
    if any(".conv1.conv1_1." in f".{n}" for n in names):
        return what + " variant d (deep 3x3 stem)"
    if any(".conv1.conv1." in f".{n}" for n in names):
        return what + " variant b (7x7 stem)"
    return what


def fit_state_dict(
    model_state: dict, state: dict[str, np.ndarray], source: str
) -> tuple[LoadReport, dict]:
    """Match ``state`` onto ``model_state`` ({name: tensor}); return the report and {name: array}.

    Raises WeightsError when one checkpoint entry would fill two parameters, or when the
    backbone mostly does not fit (the message names both sides' architecture when it can).
    """
    chosen = match_names(list(model_state), list(state))
    loaded, mismatched, to_set = [], [], {}
    for m, w in chosen.items():
        value, target = np.asarray(state[w]), model_state[m]
        if tuple(value.shape) != tuple(target.shape):
            mismatched.append((m, tuple(value.shape), tuple(target.shape)))
            continue
        to_set[m] = value.astype(str(target.dtype).replace("paddle.", ""), copy=False)
        loaded.append(m)
    uses = Counter(chosen[m] for m in loaded)
    clash = [w for w, k in uses.items() if k > 1]
    if clash:
        users = [m for m in loaded if chosen[m] == clash[0]]
        raise WeightsError(
            f"{source}: checkpoint entry {clash[0]!r} fits {len(users)} parameters "
            f"({', '.join(users[:3])}); the names are ambiguous, save the checkpoint with full names"
        )
    used = set(chosen.values())
    unused = [w for w in state if w not in used]
    classifier = [w for w in unused if _is_classifier(w)]
    report = LoadReport(
        source,
        loaded,
        mismatched,
        [m for m in model_state if m not in to_set],
        [w for w in unused if w not in classifier],
        skipped=classifier,
    )
    _check_backbone(model_state, state, loaded, source)
    return report, to_set


def _check_backbone(model_state: dict, state: dict, loaded: list[str], source: str) -> None:
    """Fail when the checkpoint is another ResNet depth/variant, or the backbone mostly misfits."""
    theirs, ours = describe_resnet(list(state)), describe_resnet(list(model_state))
    if theirs and ours and theirs != ours:
        detail = f"the checkpoint is {theirs}, the model is {ours}"
    else:
        backbone = [m for m in model_state if m.startswith("backbone.")]
        fitted = sum(1 for m in loaded if m.startswith("backbone."))
        if not backbone or fitted >= MIN_BACKBONE_FRACTION * len(backbone):
            return
        detail = f"only {fitted} of the model's {len(backbone)} backbone parameters fit"
    raise WeightsError(
        f"{source} does not fit this backbone: {detail}; use the pretrain_weights that match the "
        "backbone settings (depth, variant, width) or change them"
    )
