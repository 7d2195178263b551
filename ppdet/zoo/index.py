"""The model zoo index (``ppdet/zoo/models.yml``): load, validate, look up, render MODEL_ZOO.md.

The index is data: one YAML entry per published model (see the header of models.yml for the
fields). Loading is ``yaml.safe_load`` plus a validation that turns every problem into one line
naming the file, the entry and the key. ``render_markdown`` is what tools/gen_model_zoo.py
writes to MODEL_ZOO.md, so the page never drifts from the data.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from typing import Any

import yaml

from ppdet.errors import PpdetError

__all__ = [
    "DEFAULT_INDEX",
    "FORMATS",
    "ZooEntry",
    "ZooIndex",
    "ZooIndexError",
    "entry_to_dict",
    "load_index",
    "parse_index",
    "render_markdown",
]

DEFAULT_INDEX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models.yml")
FORMATS = ("pdparams", "legacy_v01", "ppdet_tarball")
STATUSES = ("planned",)
METRIC_KEYS = ("box_ap", "mask_ap")
# family -> heading, in page order; unknown families (published models) come after these
FAMILIES = {
    "faster_rcnn": "Faster R-CNN",
    "mask_rcnn": "Mask R-CNN",
    "cascade_rcnn": "Cascade R-CNN",
    "retinanet": "RetinaNet",
    "yolov3": "YOLOv3",
    "ssd": "SSD",
    "backbone": "Pretrained backbones",
}
ARCHITECTURE_FAMILY = {
    "FasterRCNN": "faster_rcnn",
    "MaskRCNN": "mask_rcnn",
    "CascadeRCNN": "cascade_rcnn",
    "RetinaNet": "retinanet",
    "YOLOv3": "yolov3",
    "SSD": "ssd",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_SCHEDULE = re.compile(r"\d+(\.\d+)?x|\d+e")
_HEX = {"sha256": 64, "md5": 32}


class ZooIndexError(PpdetError, ValueError):
    """A malformed index or an unknown entry: one line naming the file, entry and key."""


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One published model. ``metrics`` values are percent; a dict value maps eval size -> AP."""

    name: str
    family: str
    format: str
    urls: tuple[str, ...]
    source: str
    licence: str
    dataset: str
    title: str = ""
    architecture: str | None = None
    backbone: str | None = None
    config: str | None = None
    upstream_config: str | None = None
    status: str | None = None
    schedule: str | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    legacy: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    notes: str | None = None
    fingerprint: dict | None = None  # detections on the bundled samples (ppdet.zoo.fingerprint)

    @property
    def planned(self) -> bool:
        return self.status == "planned"

    @property
    def url(self) -> str | None:
        return self.urls[0] if self.urls else None


FIELDS = tuple(f.name for f in dataclasses.fields(ZooEntry))
REQUIRED = ("name", "family", "format", "urls", "source", "licence", "dataset")
# the order entry_to_dict writes fields in (models.yml style)
FIELD_ORDER = (
    "name", "family", "title", "architecture", "backbone", "config", "upstream_config", "status",
    "schedule", "dataset", "metrics", "format", "legacy", "urls", "sha256", "md5", "size",
    "source", "licence", "notes", "fingerprint",
)  # fmt: skip


def entry_to_dict(entry: ZooEntry) -> dict:
    """The entry as a plain dict in models.yml field order (optional empty fields left out)."""
    out: dict[str, Any] = {}
    for key in FIELD_ORDER:
        value = getattr(entry, key)
        if key == "urls":
            value = list(value)
        if value is None and key in ("upstream_config", "status", "legacy", "notes", "fingerprint"):
            continue
        out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metrics(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ZooIndexError(f"{where}.metrics: must be a mapping like {{box_ap: 38.9}}")
    for key, ap in value.items():
        if key not in METRIC_KEYS:
            raise ZooIndexError(
                f"{where}.metrics.{key}: unknown metric (known: {', '.join(METRIC_KEYS)})"
            )
        per_size = ap if isinstance(ap, dict) else {None: ap}
        for size, number in per_size.items():
            at = f"{where}.metrics.{key}" + (f".{size}" if size is not None else "")
            if size is not None and (not isinstance(size, int) or size <= 0):
                raise ZooIndexError(f"{at}: per-size AP needs an input size in pixels as key")
            if not _is_number(number) or not 0 <= number <= 100:
                raise ZooIndexError(
                    f"{at}: AP must be a number in percent (0..100), got {number!r}"
                )
    return dict(value)


def _check_entry(raw: Any, where: str) -> ZooEntry:
    if not isinstance(raw, dict):
        raise ZooIndexError(f"{where}: each entry must be a mapping of fields")
    for key in raw:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ZooIndexError(f"{where}.{key}: unknown field{hint}")
    for key in REQUIRED:
        if key not in raw:
            raise ZooIndexError(f"{where}: missing field {key!r}")
    for key in FIELDS:
        value = raw.get(key)
        if key in ("urls", "metrics", "size", "fingerprint") or value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ZooIndexError(f"{where}.{key}: must be a non-empty string, got {value!r}")
    name = raw["name"]
    if not _NAME.fullmatch(name):
        raise ZooIndexError(f"{where}.name: {name!r} may hold only letters, digits, '_', '.', '-'")
    fmt = raw["format"]
    if fmt not in FORMATS:
        raise ZooIndexError(f"{where}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    urls = raw["urls"]
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ZooIndexError(f"{where}.urls: must be a list of URLs")
    for url in urls:
        if not url.startswith(("https://", "http://")):
            raise ZooIndexError(f"{where}.urls: {url!r} is not an http(s) URL")
    if not urls and fmt != "ppdet_tarball":
        raise ZooIndexError(f"{where}.urls: needs at least one URL")
    for key, length in _HEX.items():
        value = raw.get(key)
        if value is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise ZooIndexError(f"{where}.{key}: must be {length} lowercase hex digits or null")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ZooIndexError(f"{where}.size: must be a byte count or null, got {size!r}")
    if (fmt == "legacy_v01") != (raw.get("legacy") is not None):
        raise ZooIndexError(f"{where}.legacy: required for format legacy_v01 and only there")
    status = raw.get("status")
    if status is not None and status not in STATUSES:
        raise ZooIndexError(f"{where}.status: {status!r} is not one of {', '.join(STATUSES)}")
    config = raw.get("config")
    if config is not None and status == "planned":
        raise ZooIndexError(f"{where}.status: an entry with a config is not planned")
    if config is None and status is None and raw["family"] != "backbone" and fmt != "ppdet_tarball":
        raise ZooIndexError(
            f"{where}.config: null needs 'status: planned' (or give the config path)"
        )
    if config is not None and (os.path.isabs(config) or not config.endswith((".yml", ".yaml"))):
        raise ZooIndexError(f"{where}.config: {config!r} must be a repo-relative .yml path")
    schedule = raw.get("schedule")
    if schedule is not None and not _SCHEDULE.fullmatch(schedule):
        raise ZooIndexError(f"{where}.schedule: {schedule!r} must look like 1x, 1.44x or 270e")
    if raw["family"] != "backbone" and raw.get("architecture") is None:
        raise ZooIndexError(f"{where}.architecture: required for a detector entry")
    fields = dict(raw)
    fields["urls"] = tuple(urls)
    fields["metrics"] = _check_metrics(raw.get("metrics"), where)
    if raw.get("fingerprint") is not None:
        _check_fingerprint(raw["fingerprint"], f"{where}.fingerprint")
    return ZooEntry(**fields)


def _check_fingerprint(value: Any, where: str) -> None:
    """The shape of a behaviour fingerprint (see ppdet/zoo/fingerprint.py)."""
    if not isinstance(value, dict) or set(value) != {
        "version",
        "min_score",
        "max_per_image",
        "images",
    }:
        raise ZooIndexError(
            f"{where}: must be a mapping of version, min_score, max_per_image and images"
        )
    if not isinstance(value["version"], int) or not _is_number(value["min_score"]):
        raise ZooIndexError(f"{where}: version must be an integer and min_score a number")
    k = value["max_per_image"]
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ZooIndexError(f"{where}.max_per_image: must be a positive integer")
    images = value["images"]
    if not isinstance(images, dict) or not images:
        raise ZooIndexError(f"{where}.images: must map sample image names to their detections")
    for name, record in images.items():
        at = f"{where}.images.{name}"
        if not isinstance(record, dict) or set(record) != {"pixels", "detections"}:
            raise ZooIndexError(f"{at}: must hold pixels (sha256) and detections")
        if not isinstance(record["pixels"], str) or not re.fullmatch(
            "[0-9a-f]{64}", record["pixels"]
        ):
            raise ZooIndexError(f"{at}.pixels: must be 64 lowercase hex digits")
        rows = record["detections"]
        if not isinstance(rows, list) or not all(
            isinstance(r, list) and len(r) == 6 and all(_is_number(v) for v in r) for r in rows
        ):
            raise ZooIndexError(
                f"{at}.detections: must be a list of [class, score, x1, y1, x2, y2] rows"
            )


class ZooIndex:
    """The validated entries of one index file, looked up by name or by URL."""

    def __init__(self, entries: list[ZooEntry], path: str = "") -> None:
        self.path = path
        self.entries = list(entries)
        self._by_name = {e.name: e for e in self.entries}
        self._by_url: dict[str, ZooEntry] = {}
        for e in self.entries:  # the first entry wins for a URL two seed rows share
            for url in e.urls:
                self._by_url.setdefault(url, e)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> ZooEntry | None:
        return self._by_name.get(name)

    def by_url(self, url: str) -> ZooEntry | None:
        """The entry listing ``url`` among its mirrors (its checksum verifies the download)."""
        return self._by_url.get(url)

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Zoo names close to ``name`` (for did-you-mean messages)."""
        lowered = {e.name.lower(): e.name for e in self.entries}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
        return [lowered[c] for c in close]

    def require(self, name: str) -> ZooEntry:
        entry = self.get(name)
        if entry is None:
            close = self.suggest(name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ZooIndexError(
                f"{name!r} is not in the model zoo{hint} (see: python -m ppdet.zoo list)"
            )
        return entry

    def families(self) -> list[str]:
        seen = [f for f in FAMILIES if any(e.family == f for e in self.entries)]
        return seen + sorted({e.family for e in self.entries} - set(FAMILIES))


def parse_index(data: Any, source: str) -> ZooIndex:
    """Validate the loaded YAML ``data`` of index file ``source``."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ZooIndexError(f"{source}: the top level must be a mapping with a 'models' list")
    unknown = set(data) - {"version", "models"}
    if unknown:
        raise ZooIndexError(f"{source}: unknown top-level key {min(unknown)!r}")
    entries, seen = [], set()
    for i, raw in enumerate(data["models"]):
        label = (
            raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
        )
        where = f"{source}: models[{i}]" + (f" ({label})" if label else "")
        entry = _check_entry(raw, where)
        if entry.name in seen:
            raise ZooIndexError(f"{where}.name: duplicate name {entry.name!r}")
        seen.add(entry.name)
        entries.append(entry)
    index = ZooIndex(entries, source)
    for e in entries:  # entries that share a URL must not disagree about its checksum
        first = index.by_url(e.urls[0]) if e.urls else None
        if first is not None and first is not e:
            for key in ("sha256", "md5"):
                a, b = getattr(first, key), getattr(e, key)
                if a and b and a != b:
                    raise ZooIndexError(
                        f"{source}: {e.name}.{key}: differs from {first.name} for the same URL"
                    )
    return index


_CACHE: dict[str, tuple[float, ZooIndex]] = {}


def load_index(path: str | None = None) -> ZooIndex:
    """The index at ``path`` (default: the package's models.yml), re-read when the file changes."""
    path = os.path.abspath(path or DEFAULT_INDEX)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        raise ZooIndexError(f"model zoo index not found: {path}") from None
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line = f" at line {mark.line + 1}" if mark else ""
        raise ZooIndexError(f"{path}: invalid YAML{line}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise ZooIndexError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    index = parse_index(data, path)
    _CACHE[path] = (mtime, index)
    return index


# ---- MODEL_ZOO.md -------------------------------------------------------------------------

MD_HEADER = """\
# Model zoo

<!-- Generated from ppdet/zoo/models.yml by `python tools/gen_model_zoo.py`: do not edit. -->

Every model here is an entry of `ppdet/zoo/models.yml`. Any tool takes a zoo name, a URL or a
local path wherever it takes weights, and downloads into `$PPDET_HOME` (default
`~/.cache/ppdet`), verifying the checksum when the index records one:

```bash
python -m ppdet.zoo list                      # names, AP, status
python -m ppdet.zoo fetch yolov3_darknet53_270e_coco
python tools/eval.py -c configs/yolov3/yolov3_darknet53_270e_coco.yml -o weights=yolov3_darknet53_270e_coco
```

Formats: **pdparams** = a PaddleDetection 2.x state dict (loads unchanged);
**legacy v0.1** = a PaddleDetection v0.1 static-graph tarball, converted to the 2.x layout on
load; **ppdet** = a tarball made by `tools/publish_model.py` (weights as safetensors and
pdparams, resolved config, label list, metadata). AP is COCO box/mask AP@[.5:.95] on val2017
in percent (VOC rows: mAP@0.5, 11-point); the numbers are the publishers' (PaddleDetection's
model zoo tables), not re-measured here. "planned" = our implementation of that architecture
has not landed yet; the weights are listed so the index is complete.
"""

FORMAT_LABEL = {"pdparams": "pdparams", "legacy_v01": "legacy v0.1", "ppdet_tarball": "ppdet"}


def _ap_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        sizes = sorted(value, reverse=True)
        return " / ".join(f"{value[s]:.1f}" for s in sizes) + " (" + "/".join(map(str, sizes)) + ")"
    return f"{value:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _download(entry: ZooEntry) -> str:
    if not entry.urls:
        return "-"
    name = entry.urls[0].rstrip("/").rsplit("/", 1)[-1]
    links = f"[{_cell(name)}]({entry.urls[0]})"
    if len(entry.urls) > 1:
        links += " " + " ".join(f"[mirror {i}]({u})" for i, u in enumerate(entry.urls[1:], 1))
    return links


def render_markdown(index: ZooIndex) -> str:
    """MODEL_ZOO.md for ``index``: one table per family, file order within a family."""
    out = [MD_HEADER]
    for family in index.families():
        rows = [e for e in index if e.family == family]
        out.append(f"\n## {FAMILIES.get(family, family)}\n")
        detector = family != "backbone"
        if detector:
            out.append(
                "| Name | Backbone | Schedule | Dataset | Box AP | Mask AP | Format | Download | Config |"
            )
            out.append("|---|---|---|---|---|---|---|---|---|")
        else:
            out.append("| Name | Backbone | Dataset | Format | Download |")
            out.append("|---|---|---|---|---|")
        notes = []
        for e in rows:
            mark = ""
            if e.notes:
                notes.append(e)
                mark = f" [{len(notes)}]"
            name = f"`{e.name}`{mark}"
            fmt = FORMAT_LABEL[e.format]
            if detector:
                config = (
                    "planned"
                    if e.planned
                    else (f"[{e.config}]({e.config})" if e.config else "in tarball")
                )
                out.append(
                    f"| {name} | {_cell(e.title or e.backbone or '')} | {e.schedule or '-'} | "
                    f"{e.dataset} | {_ap_text(e.metrics.get('box_ap'))} | "
                    f"{_ap_text(e.metrics.get('mask_ap'))} | {fmt} | {_download(e)} | {config} |"
                )
            else:
                out.append(
                    f"| {name} | {_cell(e.title or e.backbone or '')} | {e.dataset} | {fmt} | "
                    f"{_download(e)} |"
                )
        if notes:
            out.append("")
            out.extend(f"{i}. `{e.name}`: {e.notes}" for i, e in enumerate(notes, 1))
    return "\n".join(out) + "\n"
