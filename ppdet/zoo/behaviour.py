"""The index never lies: weights are refused by a model that cannot run them as published.

Two cases, checked by ``ppdet.zoo.weights.load_weights``:

- a ``planned`` zoo entry (named, or by URL): not usable as published with this version;
- a legacy v0.1 checkpoint (zoo entry, URL or local file) whose record
  (``LegacyModel.behaviour``, e.g. ``{"box_coder_plus_one": True, "roi_align_aligned": False}``)
  asks for fluid-era behaviour the model does not declare (``ppdet.modeling.conventions``).

A strict load (eval, infer, resume) raises a one-line ``WeightsError`` naming the missing
behaviour and the config that has it (the ``config:`` of the models.yml entry whose ``legacy:``
is the checkpoint's key); a lenient load (``pretrain_weights``) logs the same text as a warning
and goes on.

When a strict load then fails because the parameters do not fit (e.g. a seed row whose link is
another row's file: ``faster_rcnn_r101_vd_fpn_2x`` holds the R101-FPN model), ``config_hint``
names the config that does fit: the zoo entry's ``config:`` or the legacy record's.
"""

from __future__ import annotations

import logging

from ppdet.checkpoint import WeightsError
from ppdet.zoo.index import ZooEntry, ZooIndex, ZooIndexError, load_index

__all__ = [
    "check_legacy",
    "check_planned",
    "config_for_legacy",
    "config_hint",
    "entry_for_ref",
]

log = logging.getLogger(__name__)


def _index(index: str | ZooIndex | None) -> ZooIndex | None:
    if isinstance(index, ZooIndex):
        return index
    try:
        return load_index(index)
    except ZooIndexError:
        return None  # without an index there is no entry to check against


def entry_for_ref(ref: str, index: str | ZooIndex | None = None) -> ZooEntry | None:
    """The zoo entry ``ref`` names: a zoo name, or one of an entry's URLs (also ``ppdet://``)."""
    from ppdet.zoo.fetch import expand_url, is_url

    zoo = _index(index)
    if zoo is None:
        return None
    return zoo.by_url(expand_url(ref)) if is_url(ref) else zoo.get(ref)


def config_for_legacy(key: str, index: str | ZooIndex | None = None) -> tuple[str | None, str]:
    """(config path, entry name) of the models.yml entry whose ``legacy:`` is ``key`` and that
    gives a config; (None, name of a planned entry or "") when none does."""
    zoo = _index(index)
    entries = [e for e in zoo if e.legacy == key] if zoo is not None else []
    for e in sorted(entries, key=lambda e: e.name != key):  # the entry named like the key first
        if e.config:
            return e.config, e.name
    return None, entries[0].name if entries else ""


def _legacy_behaviour(key: str) -> dict:
    from ppdet.zoo.legacy import LEGACY_MODELS

    record = LEGACY_MODELS.get(key)
    return dict(record.behaviour) if record is not None else {}


def _missing(model, required: dict) -> list[str]:
    if not required:
        return []
    # imported here: ppdet.modeling registers every model class (and loads Paddle)
    from ppdet.modeling.conventions import ConventionError, missing_conventions, model_conventions

    try:
        declared = model_conventions(model)
    except ConventionError as e:
        raise WeightsError(f"cannot tell what the model runs: {e}") from None
    return missing_conventions(required, declared)


def _where_to_go(key: str, index, say_planned: bool = True) -> str:
    config, name = config_for_legacy(key, index)
    if config:
        return f"use the config {config} (zoo entry {name})"
    planned = f" (zoo entry {name} is planned)" if name and say_planned else ""
    return f"no config of this version provides it yet{planned}"


def _refuse_or_warn(message: str, strict: bool, quiet: bool) -> None:
    if strict:
        raise WeightsError(f"{message}; as pretrain_weights (fine-tuning) it loads with a warning")
    if not quiet:
        log.warning("%s; loading it anyway (lenient load for fine-tuning)", message)


def check_planned(
    model, entry: ZooEntry | None, strict: bool, index=None, quiet: bool = False
) -> None:
    """Refuse (strict) or warn (unless ``quiet``) about a ``planned`` entry, naming what the
    model lacks."""
    if entry is None or not entry.planned:
        return
    head = f"zoo entry {entry.name} is planned, not usable as published with this version"
    missing = _missing(model, _legacy_behaviour(entry.legacy)) if entry.legacy else []
    if missing:
        detail = (
            f"its v0.1 weights need fluid-era behaviour this model lacks: {', '.join(missing)}; "
            + _where_to_go(entry.legacy, index, say_planned=False)
        )
    elif entry.legacy:
        detail = "no config of this version is verified to reproduce its published numbers"
    else:
        detail = "its architecture is not implemented yet" + (
            f" (PaddleDetection config {entry.upstream_config})" if entry.upstream_config else ""
        )
    _refuse_or_warn(f"{head}: {detail}", strict, quiet)


def check_legacy(
    model, key: str, source: str, strict: bool, index=None, quiet: bool = False
) -> None:
    """Refuse (strict) or warn (unless ``quiet``) when the legacy record ``key`` needs behaviour
    ``model`` lacks."""
    missing = _missing(model, _legacy_behaviour(key))
    if not missing:
        return
    _refuse_or_warn(
        f"{source}: legacy v0.1 weights {key} need fluid-era behaviour this model lacks: "
        f"{', '.join(missing)}; {_where_to_go(key, index)}",
        strict,
        quiet,
    )


def config_hint(entry: ZooEntry | None, legacy_key: str | None, index=None) -> str:
    """Where weights that do not fit a model belong: "" when no config is known.

    ``entry``: the zoo entry the weights were named by (None for a path); ``legacy_key``: the
    v0.1 record the checkpoint converted as (None for 2.x weights)."""
    if entry is not None and entry.config:
        return f"zoo entry {entry.name} holds the model of {entry.config}: use -c {entry.config}"
    if legacy_key:
        config, name = config_for_legacy(legacy_key, index)
        if config:
            return (
                f"these v0.1 weights ({legacy_key}) are the model of {config} (zoo entry "
                f"{name}): use -c {config}"
            )
    return ""
