"""Dataset archives (COCO, Pascal VOC) fetched into a dataset folder with the zoo's machinery.

Each archive is downloaded by :func:`ppdet.zoo.download.download` (cache under
``$PPDET_HOME``, resume with HTTP Range, retries, timeouts, md5/size checked when known, a file
lock), extracted by :func:`ppdet.zoo.archive.extract` (every member checked first: no absolute
paths, ``..``, links or devices; atomic) into a staging folder inside the dataset folder, and
its tree is then moved into the dataset folder (folders of several archives merge, e.g. VOC 2007
trainval and test both fill ``VOCdevkit/VOC2007``). A marker ``.ppdet_download/<archive>.done``
records a finished archive, so a re-run skips it and an interrupted run continues where it
stopped. The downloaded archive is deleted afterwards unless ``keep_archive``.

Used by ``dataset/coco/download_coco.py`` and ``dataset/voc/download_voc.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys

from ppdet.atomic_io import atomic_write_text
from ppdet.zoo import archive, download

__all__ = ["DatasetArchive", "fetch_archive"]

MARKERS = ".ppdet_download"


@dataclasses.dataclass(frozen=True)
class DatasetArchive:
    """One archive of a dataset: its mirrors (tried in order) and what is known about it.

    ``md5`` / ``size``: as published upstream, or None when not known (never guessed).
    ``provides``: paths (relative to the dataset folder) that exist once it is unpacked.
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    size: int | None = None
    provides: tuple[str, ...] = ()


def _done_path(out: str, item: DatasetArchive) -> str:
    return os.path.join(out, MARKERS, item.name + ".done")


def is_done(out: str, item: DatasetArchive) -> bool:
    """True when ``item`` was unpacked into ``out`` (its marker and what it provides exist)."""
    return os.path.isfile(_done_path(out, item)) and all(
        os.path.exists(os.path.join(out, p)) for p in item.provides
    )


def _merge_tree(src: str, dst: str) -> None:
    """Move every file of ``src`` to the same relative path under ``dst`` (folders merge;
    a file already there is replaced: it is the same file from an interrupted run)."""
    for base, _, files in os.walk(src):
        rel = os.path.relpath(base, src)
        target = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target, exist_ok=True)
        for name in files:
            if base == src and name == archive.MARKER:
                continue
            os.replace(os.path.join(base, name), os.path.join(target, name))


def fetch_archive(
    item: DatasetArchive,
    out: str,
    *,
    root: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
) -> bool:
    """Download, check and unpack ``item`` into the dataset folder ``out``.

    Returns False when it was already there (nothing done), True after unpacking it.
    ``root``: the download cache root (default ``$PPDET_HOME``). Raises DownloadError /
    ArchiveError (one line) when no mirror gives a good file or the archive is unsafe.
    """
    out = os.path.abspath(out)
    if is_done(out, item):
        if progress:
            print(f"{item.name}: already in {out}", file=sys.stderr)
        return False
    path = _download_any(item, root, progress)
    staging = os.path.join(out, MARKERS, "staging", item.name)
    if os.path.isdir(staging) and not os.path.isfile(os.path.join(staging, archive.MARKER)):
        shutil.rmtree(staging)  # a foreign or broken leftover
    if progress:
        print(f"{item.name}: extracting into {out}", file=sys.stderr)
    archive.extract(path, staging)
    _merge_tree(staging, out)
    shutil.rmtree(staging)
    if os.path.exists(staging + ".lock"):
        os.remove(staging + ".lock")
    missing = [p for p in item.provides if not os.path.exists(os.path.join(out, p))]
    if missing:
        raise archive.ArchiveError(
            f"{path}: unpacked, but {', '.join(missing)} is missing from {out}; is this the "
            f"right archive for {item.name}?"
        )
    atomic_write_text(
        _done_path(out, item), json.dumps({"archive": item.name, "url": item.urls[0]}) + "\n"
    )
    if not keep_archive:
        for leftover in (path, path + ".verified"):
            try:
                os.remove(leftover)
            except OSError:
                pass
    return True


def _download_any(item: DatasetArchive, root: str | None, progress: bool) -> str:
    """The first mirror that gives a verified file; else one error naming every mirror's."""
    errors = []
    for url in item.urls:
        try:
            return download.download(
                url, md5=item.md5, size=item.size, root=root, progress=progress
            )
        except download.DownloadError as e:
            errors.append(str(e))
            if progress and url != item.urls[-1]:
                print(f"{e}; trying the next mirror", file=sys.stderr)
    if len(errors) == 1:
        raise download.DownloadError(errors[0])
    raise download.DownloadError(
        f"{item.name}: none of its {len(errors)} mirrors gave the file: " + " | ".join(errors)
    )
