"""One resolver for weights: a local path, an http(s) URL, ``ppdet://...`` or a zoo name.

    fetch("output/yolov3/model_final")             # local prefix (model_final.pdparams): as is
    fetch("ppdet://models/yolov3_darknet53_270e_coco.pdparams")
    fetch("https://example.org/my_model.tar.gz")   # downloaded, extracted, weights inside
    fetch("yolov3_darknet53_270e_coco")            # zoo name: URL + checksum from the index

Downloads go through :func:`ppdet.zoo.download.download` (cache under ``$PPDET_HOME``, keyed by
the URL; a URL listed in the index is verified with the index checksum). Archives (tar, tgz,
zip; downloaded or local) are extracted safely into the cache, a folder named after the archive
beside it, and the weights inside are returned: ``model.safetensors`` / ``model.pdparams`` (a
published tarball), the single ``.pdparams``, or the v0.1 variable folder (legacy tarballs).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil

from ppdet.errors import PpdetError
from ppdet.zoo import archive, download
from ppdet.zoo.index import ZooEntry, ZooIndex, load_index

__all__ = ["PPDET_URL", "FetchError", "expand_url", "fetch", "find_weights", "is_url"]

PPDET_URL = "https://paddledet.bj.bcebos.com/"  # what ppdet://path stands for (PaddleDetection)
WEIGHT_FILES = ("model.safetensors", "model.pdparams")  # in a published folder, preferred first
MAX_DEPTH = 3  # folders searched below an extracted archive


class FetchError(PpdetError, FileNotFoundError):
    """Weights that cannot be resolved: one line naming the reference and what to do."""


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://", "ppdet://"))


def expand_url(ref: str) -> str:
    """``ppdet://models/x.pdparams`` -> ``https://paddledet.bj.bcebos.com/models/x.pdparams``."""
    if ref.startswith("ppdet://"):
        return PPDET_URL + ref[len("ppdet://") :].lstrip("/")
    return ref


def _local(ref: str) -> str | None:
    """``ref`` when it exists as a file, a folder or a ``.pdparams`` prefix; else None."""
    path = os.path.expanduser(ref)
    if os.path.exists(path) or os.path.isfile(path + ".pdparams"):
        return path
    return None


def fetch(
    ref: str,
    *,
    offline: bool | None = None,
    root: str | None = None,
    progress: bool = True,
    index: str | ZooIndex | None = None,
) -> str:
    """The local path of the weights ``ref`` names (downloading and extracting as needed).

    Args:
        ref: a local file / folder / PaddleDetection prefix (returned unchanged, except a local
            archive, which is extracted), an http(s) URL, ``ppdet://path``, or a zoo name.
        offline: no network (default: ``$PPDET_OFFLINE``); only cached files can be returned.
        root: cache root (default ``$PPDET_HOME`` or ``~/.cache/ppdet``).
        progress: show download progress bars.
        index: the zoo index file or object (default: the package's ``models.yml``).
    Raises:
        FetchError: an unknown reference (with close zoo names) or an archive without weights;
        DownloadError / ArchiveError from the download and the extraction.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise FetchError(f"empty weights reference {ref!r}: give a path, a URL or a zoo name")
    ref = ref.strip()
    if is_url(ref):
        url = expand_url(ref)
        zoo = _index(index)
        entry = zoo.by_url(url) if zoo is not None else None
        return _fetch_urls([url], entry, offline, root, progress)
    local = _local(ref)
    if local is not None:
        if os.path.isfile(local) and archive.archive_kind(local):
            return find_weights(_extract_local(local, root), ref)
        return local
    zoo = _index(index)
    entry = zoo.get(ref) if zoo is not None else None
    if entry is None:
        raise _unknown(ref, zoo)
    if not entry.urls:
        raise FetchError(
            f"zoo entry {entry.name} has no download URL (published without --url-base); "
            "fetch its tarball by path instead"
        )
    return _fetch_urls(list(entry.urls), entry, offline, root, progress)


def _index(index: str | ZooIndex | None) -> ZooIndex | None:
    if isinstance(index, ZooIndex):
        return index
    return load_index(index)


def _unknown(ref: str, zoo: ZooIndex | None) -> FetchError:
    names = zoo.names() if zoo is not None else []
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
    if not close:
        lowered = {n.lower(): n for n in names}
        close = [
            lowered[c]
            for c in difflib.get_close_matches(ref.lower(), list(lowered), n=3, cutoff=0.5)
        ]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return FetchError(
        f"weights {ref!r} not found: not a local file, a URL, nor a model zoo name{hint} "
        "(list the zoo: python -m ppdet.zoo list)"
    )


def _fetch_urls(
    urls: list[str], entry: ZooEntry | None, offline: bool | None, root: str | None, progress: bool
) -> str:
    """Download the first mirror that works (checksum and size from ``entry``); extract archives."""
    sha256 = entry.sha256 if entry is not None else None
    md5 = entry.md5 if entry is not None else None
    size = entry.size if entry is not None else None
    error: download.DownloadError | None = None
    for url in urls:
        try:
            path = download.download(
                url, sha256, md5, size=size, offline=offline, root=root, progress=progress
            )
        except download.DownloadError as e:
            error = e
            continue
        if archive.archive_kind(path):
            return find_weights(_extract_beside(path), url)
        return path
    assert error is not None
    raise error


def _archive_stem(path: str) -> str:
    name = os.path.basename(path)
    lowered = name.lower()
    for suffix in sorted(archive.ARCHIVE_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name + ".extracted"


def _extract_into(path: str, target: str) -> str:
    """``archive.extract`` into ``target``, first retiring an extraction of an older file."""
    if _stale(target, path):
        stale = f"{target}.stale-{os.getpid()}"
        try:
            os.rename(target, stale)  # atomic: readers see the old folder or none
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass  # another process retired it first
    return archive.extract(path, target)


def _stale(target: str, path: str) -> bool:
    """True when ``target`` holds a finished extraction of another (older or other-size) file."""
    marker = os.path.join(target, archive.MARKER)
    try:
        with open(marker, encoding="utf-8") as f:
            size = json.load(f).get("size")
        return size != os.path.getsize(path) or os.path.getmtime(marker) < os.path.getmtime(path)
    except (OSError, ValueError, AttributeError):
        return False  # no finished extraction (or an unreadable marker: extract() decides)


def _extract_beside(path: str) -> str:
    """A downloaded archive is extracted next to it: ``<cache dir>/<name without suffix>/``."""
    return _extract_into(path, os.path.join(os.path.dirname(path), _archive_stem(path)))


def _extract_local(path: str, root: str | None) -> str:
    """A local archive is extracted into the cache, keyed by its path, size and mtime."""
    path = os.path.abspath(path)
    st = os.stat(path)
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    base = root or download.ppdet_home()
    return archive.extract(path, os.path.join(base, "extracted", key, _archive_stem(path)))


def _visible(names: list[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("."))


def find_weights(folder: str, ref: str = "") -> str:
    """The weights inside an extracted archive ``folder`` (see the module docstring)."""
    from ppdet.zoo.legacy import is_legacy

    levels: list[list[str]] = []  # folders by depth, 0 = folder itself
    current = [folder]
    for _ in range(MAX_DEPTH + 1):
        levels.append(current)
        current = [
            os.path.join(d, n)
            for d in current
            for n in _visible(os.listdir(d))
            if os.path.isdir(os.path.join(d, n))
        ]
    for name in WEIGHT_FILES:
        for level in levels:
            for d in level:
                if os.path.isfile(os.path.join(d, name)):
                    return os.path.join(d, name)
    pdparams = [
        os.path.join(d, n)
        for level in levels
        for d in level
        for n in _visible(os.listdir(d))
        if n.endswith(".pdparams") and os.path.isfile(os.path.join(d, n))
    ]
    if len(pdparams) == 1:
        return pdparams[0]
    if not pdparams:
        for level in levels:  # the shallowest folder that holds variable files itself
            for d in level:
                files = [n for n in _visible(os.listdir(d)) if os.path.isfile(os.path.join(d, n))]
                if files and is_legacy(d):
                    return d
    what = f"{len(pdparams)} .pdparams files" if pdparams else "no weights"
    raise FetchError(
        f"{ref or folder}: the archive holds {what} (expected model.safetensors, model.pdparams, "
        f"one .pdparams or a v0.1 variable folder); extracted at {folder}"
    )
