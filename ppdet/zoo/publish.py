"""Publish a trained model: one ``<name>.tar.gz`` plus its entry in the zoo index.

The tarball holds one top folder ``<name>/`` with

- ``model.safetensors``: the weights (``safetensors.numpy``: loading them runs no code);
- ``model.pdparams``: the same weights as the trainer saved them, for PaddleDetection users;
- ``config.yml``: the fully resolved config (``_BASE_`` merged, overrides applied);
- ``label_list.txt``: the class names in class-id order (from the EvalDataset);
- ``meta.json``: name, architecture, backbone, dataset, metrics of the last eval of these
  weights (``eval_metrics.json`` beside them), training iterations, sha256 and size of every
  file, ppdet version, creation time (UTC), and the behaviour fingerprint: the detections the
  weights give on the bundled sample images (``ppdet.zoo.fingerprint``), also written into the
  index entry, so ``python -m ppdet.zoo verify NAME --behaviour`` can check them later.

The tarball is written atomically; then the index entry (format ``ppdet_tarball``, sha256 and
size of the tarball, URL = ``url_base`` + file name) is added or replaced in the index file,
and MODEL_ZOO.md is regenerated. ``fetch`` of the tarball returns ``<name>/model.safetensors``.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import tarfile
import tempfile
from typing import Any

import filelock
import numpy as np
import yaml

from ppdet.atomic_io import atomic_path, atomic_write_text
from ppdet.errors import PpdetError
from ppdet.zoo.index import (
    ARCHITECTURE_FAMILY,
    DEFAULT_INDEX,
    ZooEntry,
    entry_to_dict,
    load_index,
    parse_index,
    render_markdown,
)

__all__ = ["PublishError", "publish", "read_eval_metrics", "update_index"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
SCHEDULES = {12: "1x", 24: "2x", 36: "3x"}  # PaddleDetection: 1x = 12 epochs at batch 16


class PublishError(PpdetError, ValueError):
    """A model that cannot be published as asked: one line naming what and how to fix it."""


def _sha256(path: str) -> str:
    from ppdet.zoo.download import file_sums

    return file_sums(path)["sha256"]


def _prefix(path: str) -> str:
    path = os.path.abspath(path)
    return path.removesuffix(".pdparams")


def read_eval_metrics(weights: str, iteration: int | None) -> tuple[dict, int | None, str]:
    """(metrics, iteration, note) from ``eval_metrics.json`` beside ``weights`` when it is about them.

    The record (``{"weights", "iteration", "metrics"}``) counts when its ``weights`` is the same
    checkpoint, or when it was written during training at the checkpoint's own ``iteration``.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), "eval_metrics.json")
    if not os.path.isfile(path):
        return {}, iteration, "no eval_metrics.json beside the weights: no metrics published"
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        metrics = record["metrics"]
        if not isinstance(metrics, dict):
            raise TypeError("metrics is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PublishError(f"{path}: unreadable eval record ({e}); re-run tools/eval.py") from None
    evaluated = record.get("weights")
    rec_iter = record.get("iteration")
    same_file = isinstance(evaluated, str) and (
        _prefix(evaluated) == _prefix(weights)  # a relative path counts when its file name matches
        or (
            not os.path.isabs(evaluated)
            and os.path.basename(_prefix(evaluated)) == os.path.basename(_prefix(weights))
        )
    )
    same_step = iteration is not None and rec_iter == iteration and not same_file
    if not (same_file or same_step):
        return (
            {},
            iteration,
            (
                f"{path} is about {evaluated!r} (iteration {rec_iter}), not these weights: no metrics "
                "published (run tools/eval.py with these weights first)"
            ),
        )
    metrics = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return metrics, rec_iter if rec_iter is not None else iteration, f"metrics from {path}"


def _checkpoint_iteration(weights: str) -> int | None:
    """Iterations trained, from the ``.pdopt`` beside a checkpoint (None without one)."""
    opt = _prefix(weights) + ".pdopt"
    if not os.path.isfile(opt):
        return None
    from ppdet.checkpoint import safe_load

    try:
        state = safe_load(opt)
    except (pickle.UnpicklingError, OSError, EOFError, ValueError):  # costs only the count
        return None
    value = state.get("iteration") if isinstance(state, dict) else None
    return int(value) if isinstance(value, (int, np.integer)) else None


def _index_metrics(metrics: dict) -> dict:
    """Evaluator keys -> index metrics in percent (COCO ``AP``, VOC ``mAP``, ``mask_AP``)."""
    out = {}
    for key, names in (("box_ap", ("bbox_AP", "AP", "mAP")), ("mask_ap", ("mask_AP", "segm_AP"))):
        for name in names:
            if name in metrics:
                value = metrics[name]
                out[key] = round(value * 100 if value <= 1.0 else value, 1)
                break
    return out


def _label_list(cfg: dict, label_file: str | None) -> list[str]:
    """The class names published with the model: ``--label_list``, else the EvalDataset's (the
    data it was evaluated on), else what inference would use (``ppdet.data.labels``), never
    placeholders."""
    if label_file:
        with open(label_file, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    from ppdet.config import ConfigError
    from ppdet.data.errors import DataError
    from ppdet.data.labels import resolve_labels
    from ppdet.data.loader import build_dataset

    try:
        names = list(build_dataset(cfg, "eval").label_list)
        if names:
            return names
        problem = "the EvalDataset has no class names"
    except (ConfigError, DataError, OSError, ValueError, KeyError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
    labels = resolve_labels(cfg)
    if labels.source != "placeholders":
        return list(labels.names)
    raise PublishError(
        f"cannot find the class names ({problem}; no other source for this config); "
        "pass a label list file (--label_list)"
    )


def _fingerprint(cfg: dict, model) -> dict:
    """The behaviour fingerprint of the loaded ``model``; a one-line PublishError if the test
    pipeline cannot run."""
    from ppdet.config import ConfigError
    from ppdet.data.errors import DataError
    from ppdet.zoo.fingerprint import FingerprintError, compute

    try:
        result = compute(cfg, model)
    except (ConfigError, DataError, FingerprintError, OSError) as e:
        raise PublishError(
            f"cannot compute the behaviour fingerprint on the sample images "
            f"({str(e).splitlines()[0]}); fix TestReader/TestDataset or pass --no_fingerprint"
        ) from None
    count = sum(len(r["detections"]) for r in result["images"].values())
    print(f"behaviour fingerprint: {count} detections on {len(result['images'])} sample images")
    return result


def _backbone(cfg: dict) -> tuple[str | None, str]:
    arch = cfg.get("architecture")
    section = cfg.get(arch) or {}
    name = section.get("backbone") if isinstance(section, dict) else None
    if isinstance(name, dict):
        name = name.get("name")
    if not isinstance(name, str):
        return None, ""
    args = cfg.get(name) or {}
    depth = args.get("depth") if isinstance(args, dict) else None
    variant = args.get("variant") if isinstance(args, dict) else None
    title = f"{name}{depth or ''}" + (f"-v{variant}" if variant and variant != "b" else "")
    return name, title


def _schedule(cfg: dict) -> str | None:
    epoch = cfg.get("epoch")
    if isinstance(epoch, int) and epoch > 0:
        return SCHEDULES.get(epoch, f"{epoch}e")
    return None


def _repo_config(cfg: dict) -> str | None:
    path = getattr(cfg, "path", "") or ""
    if not path:
        return None
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    if rel.startswith("..") or os.path.isabs(rel):
        return None
    return rel.replace(os.sep, "/")


def _tar_add(
    tar: tarfile.TarFile, name: str, data: bytes | None, mtime: int, path: str | None = None
) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if data is None and path is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    info.mode = 0o644
    if path is not None:
        info.size = os.path.getsize(path)
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def publish(
    config: str | dict,
    weights: str | None,
    output_dir: str,
    name: str | None = None,
    url_base: str | None = None,
    index_path: str | None = None,
    model_zoo_md: str | None = None,
    *,
    overrides: list[str] | tuple = (),
    dataset: str | None = None,
    label_list: str | None = None,
    licence: str = "Apache-2.0",
    update: bool = True,
    fingerprint: bool = True,
) -> str:
    """Pack ``weights`` (a ``.pdparams`` file or prefix) trained with ``config`` as a tarball.

    Args:
        config: the config file (or an already loaded config); ``overrides`` as with ``-o``.
        weights: the checkpoint; None uses the config's ``weights``.
        output_dir: where ``<name>.tar.gz`` is written.
        name: zoo name (default: the config file name).
        url_base: where the tarball will be served; the index URL is ``url_base/<file>``.
        index_path: index file to update (default: the package's models.yml).
        model_zoo_md: page to regenerate (default: the repository's MODEL_ZOO.md when
            ``index_path`` is the package index; none otherwise).
        dataset: the index ``dataset`` (default: the EvalDataset folder name, e.g. ``coco``).
        label_list: a class-name file to use instead of the EvalDataset's names.
        update: False writes only the tarball.
        fingerprint: compute the behaviour fingerprint (runs the config's TestReader on the
            bundled sample images).
    Returns the tarball path. Raises PublishError (and ConfigError / WeightsError) in one line.
    """
    import ppdet
    from ppdet.checkpoint import load_state_dict, weights_file, write_safetensors
    from ppdet.config import dump_config
    from ppdet.zoo.weights import read_weights

    cfg = ppdet.load_config(config, overrides) if isinstance(config, str) else config
    weights = weights or cfg.get("weights")
    if not weights:
        raise PublishError("no weights to publish: pass --weights or -o weights=PREFIX")
    weights = weights_file(weights)
    stem = os.path.splitext(os.path.basename(getattr(cfg, "path", "") or "model"))[0]
    name = name or stem
    if not _NAME.fullmatch(name):
        raise PublishError(f"--name {name!r}: use letters, digits, '_', '.', '-' only")

    state = read_weights(weights)
    model = ppdet.build_model(cfg)  # the weights must fit the config they are published with
    load_state_dict(model, state, weights, strict=True, quiet=True)
    labels = _label_list(cfg, label_list)
    if cfg.get("num_classes") is not None and len(labels) != cfg["num_classes"]:
        raise PublishError(
            f"the label list has {len(labels)} names but the config says num_classes: "
            f"{cfg['num_classes']}; check EvalDataset or --label_list"
        )
    behaviour = _fingerprint(cfg, model) if fingerprint else None
    iteration = _checkpoint_iteration(weights)
    raw_metrics, iteration, metrics_note = read_eval_metrics(weights, iteration)
    print(metrics_note)

    arch = cfg.get("architecture")
    backbone, title = _backbone(cfg)
    eval_dir = (cfg.get("EvalDataset") or {}).get("dataset_dir") or ""
    dataset = (
        dataset
        or (os.path.basename(os.path.normpath(eval_dir)).lower() if eval_dir else "")
        or "custom"
    )
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    mtime = int(created.timestamp())

    os.makedirs(output_dir, exist_ok=True)
    tarball = os.path.join(output_dir, f"{name}.tar.gz")
    stage = tempfile.mkdtemp(prefix=f".{name}.", suffix=".stage", dir=output_dir)
    try:
        files = {
            "model.safetensors": os.path.join(stage, "model.safetensors"),
            "model.pdparams": os.path.join(stage, "model.pdparams"),
            "config.yml": os.path.join(stage, "config.yml"),
            "label_list.txt": os.path.join(stage, "label_list.txt"),
        }
        write_safetensors(
            state, files["model.safetensors"], metadata={"format": "np", "name": name}
        )
        if weights.endswith(".pdparams"):  # the file as the trainer saved it
            shutil.copyfile(weights, files["model.pdparams"])
        else:  # converted (legacy v0.1) or safetensors weights
            import paddle

            paddle.save(state, files["model.pdparams"])
        with open(files["config.yml"], "w", encoding="utf-8") as f:
            f.write(dump_config(cfg))
        with open(files["label_list.txt"], "w", encoding="utf-8") as f:
            f.write("".join(f"{label}\n" for label in labels))
        meta = {
            "name": name,
            "architecture": arch,
            "backbone": backbone,
            "dataset": dataset,
            "num_classes": len(labels),
            "metrics": raw_metrics,
            "iteration": iteration,
            "source_weights": os.path.basename(weights),
            "files": {
                k: {"sha256": _sha256(p), "size": os.path.getsize(p)} for k, p in files.items()
            },
            "ppdet_version": ppdet.__version__,
            "created": created.isoformat(),
        }
        if behaviour is not None:
            meta["fingerprint"] = behaviour
        meta_bytes = (json.dumps(meta, indent=1) + "\n").encode("utf-8")
        with atomic_path(tarball) as tmp, tarfile.open(tmp, "w:gz") as tar:
            _tar_add(tar, name, None, mtime)
            for member, path in files.items():
                _tar_add(tar, f"{name}/{member}", None, mtime, path=path)
            _tar_add(tar, f"{name}/meta.json", meta_bytes, mtime)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"wrote {tarball} ({os.path.getsize(tarball)} bytes)")

    if update:
        entry = ZooEntry(
            name=name,
            family=ARCHITECTURE_FAMILY.get(arch, str(arch).lower()),
            title=title,
            architecture=arch,
            backbone=backbone,
            config=_repo_config(cfg),
            schedule=_schedule(cfg),
            dataset=dataset,
            metrics=_index_metrics(raw_metrics),
            format="ppdet_tarball",
            urls=(url_base.rstrip("/") + "/" + os.path.basename(tarball),) if url_base else (),
            sha256=_sha256(tarball),
            size=os.path.getsize(tarball),
            source="published with tools/publish_model.py",
            licence=licence,
            fingerprint=behaviour,
        )
        index_file = index_path or DEFAULT_INDEX
        update_index(index_file, entry)
        md = model_zoo_md
        if md is None and index_path is None and os.path.isfile(os.path.join(ROOT, "MODEL_ZOO.md")):
            md = os.path.join(ROOT, "MODEL_ZOO.md")
        if md:
            atomic_write_text(md, render_markdown(load_index(index_file)))
            print(f"updated {index_file} and {md}")
        else:
            print(f"updated {index_file}")
    return tarball


# ---- index file update (text level, so the file's comments and layout survive) --------------


def _flow(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False
    )
    text = text.strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def _entry_lines(entry: ZooEntry) -> list[str]:
    return [
        ("- " if i == 0 else "  ") + f"{k}: {_flow(v)}"
        for i, (k, v) in enumerate(entry_to_dict(entry).items())
    ]


def _entry_span(lines: list[str], name: str) -> tuple[int, int] | None:
    """[start, end) of the lines of entry ``name`` (from its ``- name:`` to the next entry/comment)."""
    pattern = re.compile(r"-\s+name:\s*[\"']?" + re.escape(name) + r"[\"']?\s*$")
    for start, line in enumerate(lines):
        if pattern.fullmatch(line.rstrip("\n")):
            end = start + 1
            while end < len(lines) and lines[end].startswith((" ", "\t")) and lines[end].strip():
                end += 1
            return start, end
    return None


def update_index(index_file: str, entry: ZooEntry) -> None:
    """Add or replace ``entry`` in ``index_file`` (validated before the atomic write).

    Only a ``ppdet_tarball`` entry may be replaced: the name of an upstream model is refused.
    """
    from ppdet.zoo.download import ppdet_home

    key = hashlib.sha256(os.path.abspath(index_file).encode("utf-8")).hexdigest()[:16]
    lock = os.path.join(ppdet_home(), "locks", f"index-{key}.lock")  # not beside the repo's file
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with filelock.FileLock(lock):
        current = load_index(index_file)
        old = current.get(entry.name)
        if old is not None and old.format != "ppdet_tarball":
            raise PublishError(
                f"{entry.name!r} is a {old.format} entry of {index_file} (not a published tarball); "
                "choose another --name"
            )
        with open(index_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
        new = _entry_lines(entry)
        span = _entry_span(lines, entry.name)
        if span is None:
            while lines and not lines[-1].strip():
                lines.pop()
            lines += new
        else:
            lines[span[0] : span[1]] = new
        text = "\n".join(lines) + "\n"
        parse_index(yaml.safe_load(text), index_file)  # never write an index that does not load
        atomic_write_text(index_file, text)
