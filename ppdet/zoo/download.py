"""Verified, cached, resumable downloads for the model zoo.

The cache lives under ``$PPDET_HOME`` (default ``~/.cache/ppdet``), keyed by the full URL::

    <home>/downloads/<sha256(url)[:16]>/<basename>          the verified file
    <home>/downloads/<sha256(url)[:16]>/<basename>.verified  JSON: size, mtime, inode, sha256, md5
    <home>/downloads/<sha256(url)[:16]>/<basename>.part      a partial download (resumable)
    <home>/downloads/<sha256(url)[:16]>/<basename>.lock      held while downloading

A cache hit (the file is there and, when a checksum is given, the ``.verified`` sidecar still
describes the same file with that checksum, or re-hashing it matches) makes no network request.
A download streams into ``.part`` (resumed with ``Range: bytes=N-``), is checked against the
sha256/md5, then renamed to the final name: a half file never carries the final name. Several
processes asking for the same URL take the lock in turn: one downloads, the others find the hit.

A response is refused (deleted, never cached) when it is empty, when its size differs from the
size the index records, or when its first bytes show it is not what its name says (an archive
without a tar/zip header, a ``.pdparams`` without a pickle header, a ``.safetensors`` without
its header); a verified checksum outranks these guesses. A server that goes silent fails each
attempt after the read timeout (20 s by default) and the whole download once no byte of the
file has arrived for ``stall_timeout`` seconds (60 by default), across attempts and pauses.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import posixpath
import re
import sys
import time
import urllib.parse

import filelock
import requests
import urllib3
from tqdm import tqdm

from ppdet.atomic_io import atomic_write_text
from ppdet.checkpoint import checkpoint_header_problem
from ppdet.errors import PpdetError
from ppdet.zoo.archive import ARCHIVE_SUFFIXES, archive_kind

CHUNK = 1 << 16  # bytes per read from the socket
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After fails instead of waiting
MAX_BACKOFF = 60.0  # seconds: cap on one exponential-backoff sleep
TIMEOUT = (10.0, 20.0)  # seconds: (connect, read) per attempt
STALL_TIMEOUT = 60.0  # seconds without a byte of the file before the whole download gives up
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


class DownloadError(PpdetError, RuntimeError):
    """A download that cannot be done: one line naming the URL and what to do."""


class _Retryable(Exception):
    """A transient failure (5xx, 429, dropped connection, timeout): try again after a pause."""

    def __init__(self, reason: str, retry_after: float | None = None, restart: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.restart = restart  # the partial file was discarded: try again without a pause


def ppdet_home() -> str:
    """``$PPDET_HOME`` or ``~/.cache/ppdet``."""
    return os.path.abspath(os.path.expanduser(os.environ.get("PPDET_HOME") or "~/.cache/ppdet"))


def is_offline() -> bool:
    """True when ``PPDET_OFFLINE`` is ``1``, ``true`` or ``yes`` (any case)."""
    return os.environ.get("PPDET_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def cache_path(url: str, root: str | None = None) -> str:
    """``<root or ppdet_home()>/downloads/<sha256(url)[:16]>/<basename of the URL path>``."""
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    name = name.replace("\\", "_").replace("\x00", "_")
    if name in ("", ".", ".."):
        name = "download"
    return os.path.join(root or ppdet_home(), "downloads", key, name)


def download(
    url: str,
    sha256: str | None = None,
    md5: str | None = None,
    *,
    size: int | None = None,
    offline: bool | None = None,
    root: str | None = None,
    progress: bool = True,
    timeout: tuple[float, float] = TIMEOUT,
    stall_timeout: float = STALL_TIMEOUT,
    retries: int = 4,
    backoff: float = 1.0,
) -> str:
    """Fetch ``url`` into the cache (or find it there) and return the path of the verified file.

    ``sha256``/``md5``: expected hex digests (either, both or none); ``size``: expected bytes
    (None = unknown). ``offline`` (default :func:`is_offline`) turns a needed download into a
    :class:`DownloadError` naming the cache path where the file can be put by hand.
    ``timeout``: (connect, read) seconds per attempt. ``stall_timeout``: the download gives up
    once this many seconds pass without a byte of the file (across attempts and pauses), so a
    silent server fails within about that time. ``retries``: extra attempts after a
    5xx/429/connection error/timeout, sleeping ``backoff * 2**k`` seconds (or the server's
    ``Retry-After``). A 4xx other than 429 fails at once.
    """
    expected = _expected_sums(url, sha256, md5)
    path = cache_path(url, root)
    if _cached(url, path, expected, size):
        return path
    if offline is None:
        offline = is_offline()
    if offline:
        raise _offline_error(url, path, expected)
    lock = filelock.FileLock(path + ".lock")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if progress:
                print(f"ppdet: waiting for another process downloading {url}", file=sys.stderr)
            lock.acquire()
    except OSError as e:
        raise DownloadError(
            f"{url}: cannot write to the cache folder {os.path.dirname(path)} "
            f"({e.strerror or e}); set PPDET_HOME to a writable folder"
        ) from None
    try:
        if _cached(url, path, expected, size):  # the other process finished
            return path
        if not expected and progress:
            print(
                f"ppdet: no checksum known for {url}; only its size and format are checked",
                file=sys.stderr,
            )
        _download_locked(
            url, path, expected, size, progress, timeout, stall_timeout, retries, backoff
        )
        return path
    finally:
        lock.release()


def file_sums(path: str) -> dict[str, str]:
    """``{"sha256": hex, "md5": hex}`` of a file, read once."""
    sha, md = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md.update(block)
    return {"sha256": sha.hexdigest(), "md5": md.hexdigest()}


# ---------------------------------------------------------------- cache check and marker


def _expected_sums(url: str, sha256: str | None, md5: str | None) -> dict[str, str]:
    expected = {}
    for algo, value, digits in (("sha256", sha256, 64), ("md5", md5, 32)):
        if value:
            value = value.strip().lower()
            if not re.fullmatch(f"[0-9a-f]{{{digits}}}", value):
                raise DownloadError(
                    f"{url}: expected {algo} {value!r} is not {digits} hex digits; fix the index"
                )
            expected[algo] = value
    return expected


def _marker_path(path: str) -> str:
    return path + ".verified"


def _read_marker(path: str) -> dict | None:
    try:
        with open(_marker_path(path), encoding="utf-8") as f:
            marker = json.load(f)
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    same = (marker.get("size"), marker.get("mtime_ns"), marker.get("ino")) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    return marker if same else None


def _write_marker(path: str, sums: dict[str, str]) -> None:
    st = os.stat(path)
    marker = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, **sums}
    try:
        atomic_write_text(_marker_path(path), json.dumps(marker))
    except OSError:  # a read-only cache still works, it just re-hashes next time
        pass


def _cached(url: str, path: str, expected: dict[str, str], size: int | None) -> bool:
    """True when ``path`` holds a usable copy of ``url``. A cached file that fails the
    plausibility checks (e.g. an empty file an older version kept) is deleted: it is a miss."""
    if not os.path.isfile(path) or not _verified(path, expected):
        return False
    if expected or implausible(url, path, size) is None:
        return True
    for stale in (path, _marker_path(path)):
        try:
            os.remove(stale)
        except OSError:
            pass
    return False


def implausible(url: str, path: str, size: int | None = None) -> str | None:
    """Why the file at ``path`` cannot be the file ``url`` names, or None.

    Empty; another size than ``size`` (the index's); or, judged by the first bytes, not the
    kind of file the URL's name says: an archive (.tar, .tar.gz, .zip, ...) without a tar/zip
    header, a .pdparams/.pdopt without a pickle header, a .safetensors without its header.
    """
    actual = os.path.getsize(path)
    if actual == 0:
        return "the server sent an empty file (0 bytes)"
    if size is not None and actual != size:
        smaller = "only " if actual < size else ""
        return f"the server sent {smaller}{actual} bytes, the index says {size}"
    name = posixpath.basename(urllib.parse.urlsplit(url).path).lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        if archive_kind(path) is None:
            return f"the {actual}-byte response is not a tar or zip archive (by its header)"
        return None
    with open(path, "rb") as f:
        head = f.read(64)
    problem = checkpoint_header_problem(head, name, actual)
    return f"the {actual}-byte response is {problem}" if problem else None


def _verified(path: str, expected: dict[str, str]) -> bool:
    """True when the cached file matches ``expected`` (trivially, when nothing is expected)."""
    if not expected:
        return True
    marker = _read_marker(path)
    if marker and all(marker.get(a) == v for a, v in expected.items()):
        return True
    sums = file_sums(path)
    if all(sums[a] == v for a, v in expected.items()):
        _write_marker(path, sums)
        return True
    return False


def _offline_error(url: str, path: str, expected: dict[str, str]) -> DownloadError:
    if os.path.isfile(path):
        sums = file_sums(path)
        bad = ", ".join(f"{a} expected {v}, got {sums[a]}" for a, v in expected.items())
        return DownloadError(
            f"offline mode (PPDET_OFFLINE): cached {path} does not match ({bad}); "
            f"replace it with the file from {url}"
        )
    return DownloadError(
        f"offline mode (PPDET_OFFLINE) and {url} is not cached; download it by hand to {path} "
        "or unset PPDET_OFFLINE"
    )


# ---------------------------------------------------------------- the transfer


class _Stall:
    """The time budget of one download: seconds without a byte of the file, across attempts."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.last = time.monotonic()

    def fed(self) -> None:
        self.last = time.monotonic()

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.last)


def _download_locked(
    url, path, expected, size, progress, timeout, stall_timeout, retries, backoff
) -> None:
    part = path + ".part"
    attempt, reason = 0, ""
    stall = _Stall(stall_timeout)
    with requests.Session() as session:
        session.headers["User-Agent"] = "ppdet-zoo"
        while True:
            left = stall.left()
            if left <= 0:
                raise DownloadError(
                    f"{url}: timed out: no data for {stall_timeout:g} s ({attempt} "
                    f"attempt{'s' if attempt != 1 else ''}, last: {reason}); check the network "
                    f"or the server and try again{_keep_note(part, path)}"
                )
            try:
                limits = (min(timeout[0], left), min(timeout[1], left))
                _fetch_once(session, url, part, progress, limits, size, stall)
                break
            except _Retryable as e:
                if e.restart:  # a stale partial file was dropped: not the server's fault
                    continue
                attempt, reason = attempt + 1, e.reason
                if attempt > retries:
                    raise DownloadError(
                        f"{url}: {e.reason} ({attempt} attempt{'s' if attempt > 1 else ''}); "
                        f"check the network or the server and try again{_keep_note(part, path)}"
                    ) from None
                if e.retry_after is not None and e.retry_after > MAX_RETRY_AFTER:
                    raise DownloadError(
                        f"{url}: {e.reason}, and the server asks to wait {e.retry_after:g} s; "
                        "try again later"
                    ) from None
                delay = backoff * 2 ** (attempt - 1) if e.retry_after is None else e.retry_after
                time.sleep(min(max(delay, 0.0), MAX_BACKOFF, max(stall.left(), 0.0)))
    sums = file_sums(part)
    bad = [(a, v, sums[a]) for a, v in expected.items() if sums[a] != v]
    problem = implausible(url, part, size)
    if problem and (bad or not expected):  # a matching checksum outranks the guesses
        os.remove(part)
        raise DownloadError(
            f"{url}: {problem}; refused (deleted, nothing cached); check the URL or the server"
        )
    if bad:
        os.remove(part)
        detail = ", ".join(f"{a} expected {v}, got {got}" for a, v, got in bad)
        raise DownloadError(
            f"{url}: checksum mismatch ({detail}); the download was deleted; try again, and if "
            "it persists the URL or the index entry is wrong"
        )
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, path)
    _write_marker(path, sums)


def _fetch_once(
    session: requests.Session, url: str, part: str, progress: bool, timeout, size, stall
) -> None:
    """One HTTP request that appends to (or restarts) ``part`` until it holds the whole file."""
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    headers = {"Accept-Encoding": "identity"}  # byte ranges of the file itself, not of a gzip
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.SSLError as e:
        raise DownloadError(
            f"{url}: TLS error ({_short(e)}); check the URL and certificates"
        ) from None
    except requests.exceptions.TooManyRedirects:
        raise DownloadError(f"{url}: too many redirects; check the URL") from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ) as e:
        raise DownloadError(f"{url}: not a valid http(s) URL ({_short(e)})") from None
    except requests.exceptions.Timeout as e:
        raise _Retryable(f"timed out ({_short(e)})") from None
    except requests.exceptions.ConnectionError as e:
        raise _Retryable(f"connection failed ({_short(e)})") from None
    with resp:
        status = resp.status_code
        if status in RETRY_STATUS:
            raise _Retryable(f"HTTP {status} {resp.reason}", _retry_after(resp))
        if status == 416 and have:
            total = _content_range_total(resp)
            if total == have:  # the partial file already holds everything
                return
            os.remove(part)
            raise _Retryable("HTTP 416 for a stale partial file", restart=True)
        if status not in (200, 206):
            hint = "check the URL" if status in (404, 410) else "check the URL and access rights"
            raise DownloadError(f"{url}: HTTP {status} {resp.reason} (not retried); {hint}")
        _reject_html_type(url, resp)
        if status == 206:
            start = _content_range_start(resp)
            if start != have:
                if not have:
                    raise DownloadError(
                        f"{url}: the server sent a partial response (bytes {start}-) to a plain "
                        "request; check the URL or the server"
                    )
                os.remove(part)
                raise _Retryable(f"server resumed at byte {start}, not {have}", restart=True)
            total = _content_range_total(resp)
            mode = "ab"
        else:  # 200: the whole file (also when the server ignores Range): start over
            have, mode = 0, "wb"
            total = _int_header(resp, "Content-Length")
        _check_announced(url, total, size)
        _stream(url, resp, part, mode, have, total, progress, stall)


def _check_announced(url: str, total: int | None, size: int | None) -> None:
    """Refuse before reading a body whose announced length cannot be the file."""
    if total == 0:
        raise DownloadError(
            f"{url}: the server sent an empty file (0 bytes); refused (nothing cached); check "
            "the URL or the server"
        )
    if total is not None and size is not None and total != size:
        raise DownloadError(
            f"{url}: the server announces {total} bytes, the index says {size}; refused "
            "(nothing cached); check the URL or the index entry"
        )


def _stream(url, resp, part, mode, have, total, progress, stall) -> None:
    name = os.path.basename(part)[: -len(".part")]
    if progress:
        print(f"ppdet: downloading {url}", file=sys.stderr)
    bar = tqdm(
        total=total,
        initial=have,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    written, first = have, have == 0
    # keep every byte that arrived before a hang-up (urllib3 would drop its last buffer); the
    # length check below reports the short read instead
    if hasattr(resp.raw, "enforce_content_length"):
        resp.raw.enforce_content_length = False
    try:
        with open(part, mode) as f:
            for block in _blocks(resp):
                if first and block:
                    first = False
                    if not _is_html_url(url) and _looks_html(block):
                        f.close()
                        os.remove(part)
                        raise _html_error(url, resp)
                f.write(block)
                written += len(block)
                stall.fed()
                bar.update(len(block))
    except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError) as e:
        raise _Retryable(f"timed out after {written} bytes ({_short(e)})") from None
    except (
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
    ) as e:
        raise _Retryable(f"connection dropped after {written} bytes ({_short(e)})") from None
    except OSError as e:
        raise DownloadError(
            f"{url}: cannot write {part} ({e.strerror or e}); check free space and permissions"
        ) from None
    finally:
        bar.close()
    if total is not None and written < total:
        raise _Retryable(f"connection closed after {written} of {total} bytes")


def _keep_note(part: str, path: str) -> str:
    """What happens to the partial file after giving up (an empty one is removed)."""
    if os.path.isfile(part) and os.path.getsize(part) == 0:
        os.remove(part)
    if os.path.isfile(part):
        return f" (the partial file {part} is kept and resumes next time)"
    return f" (or put the file at {path} by hand)"


def _blocks(resp: requests.Response):
    """The body's raw bytes (no Content-Encoding decoding: ranges count these) as they arrive."""
    raw = resp.raw
    if hasattr(raw, "read1"):
        while True:
            block = raw.read1(CHUNK, decode_content=False)
            if not block:
                return
            yield block
    else:
        yield from raw.stream(CHUNK, decode_content=False)


# ---------------------------------------------------------------- small helpers


def _short(e: Exception) -> str:
    """The innermost one-line reason of a requests/urllib3 error."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    m = re.search(
        r"(\[Errno [^\]]+\][^'\")]*|Read timed out|Connection refused|"
        r"IncompleteRead\([^)]*\)|timed out)",
        text,
    )
    return m.group(1).strip() if m else text[:160]


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _int_header(resp: requests.Response, name: str) -> int | None:
    try:
        return int(resp.headers[name])
    except (KeyError, ValueError):
        return None


def _content_range_start(resp: requests.Response) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _content_range_total(resp: requests.Response) -> int | None:
    m = re.search(r"/(\d+)\s*$", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _is_html_url(url: str) -> bool:
    return urllib.parse.urlsplit(url).path.lower().endswith((".html", ".htm"))


def _looks_html(block: bytes) -> bool:
    head = block[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html"))


def _html_error(url: str, resp: requests.Response) -> DownloadError:
    ctype = resp.headers.get("Content-Type", "?")
    where = f" (redirected to {resp.url})" if resp.url != url else ""
    return DownloadError(
        f"{url}: the server sent an HTML page (Content-Type {ctype}){where}, not the file; "
        "check the URL (a login, error or landing page?)"
    )


def _reject_html_type(url: str, resp: requests.Response) -> None:
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml") and not _is_html_url(url):
        raise _html_error(url, resp)
