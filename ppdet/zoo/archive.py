"""Safe, atomic extraction of model archives (.tar, .tar.gz/.tgz, .tar.bz2/.tar.xz, .zip).

Every member is checked before anything is written. Refused, with one line naming the archive
and the member: absolute names (``/x``, ``\\x``, ``C:x``), any ``..`` component (even one that
would stay inside), symbolic and hard links (all of them: model archives hold plain files, and
refusing every link leaves no way to write through one), device files, FIFOs and other special
members. Only regular files and directories are extracted; permission bits are kept for the
owner's read/write/execute plus group/other read/execute (no setuid, no ownership).

The archive is extracted into a temp folder beside ``target_dir`` that is renamed into place
only when complete, with a marker file (:data:`MARKER`) inside; a lock file beside the target
(``<target_dir>.lock``) makes concurrent extractions take turns, and the later ones find the
finished folder and return at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib

import filelock

from ppdet.errors import PpdetError

MARKER = ".ppdet_extracted.json"  # written inside a complete target_dir
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ARCHIVE_SUFFIXES = TAR_SUFFIXES + (".zip",)
_COMPRESSED_MAGIC = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}


class ArchiveError(PpdetError, RuntimeError):
    """An archive that cannot be extracted safely: one line naming it and the member."""


def archive_kind(path: str) -> str | None:
    """``"tar"``, ``"zip"`` or None, judged by the file's content (the suffix breaks ties).

    A compressed stream whose start is not a tar header counts as ``"tar"`` only when the
    name says it is one (so a damaged ``.tar.gz`` is reported as corrupt by :func:`extract`).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if _looks_html(head):
        return None
    for magic, codec in _COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            if _is_tar_header(_decompress_start(head, codec)):
                return "tar"
            return "tar" if path.lower().endswith(TAR_SUFFIXES) else None
    return "tar" if _is_tar_header(head) else None


def extract(path: str, target_dir: str) -> str:
    """Extract archive ``path`` into ``target_dir`` (created atomically); return ``target_dir``.

    When ``target_dir`` already holds a complete extraction it is returned untouched.
    Raises :class:`ArchiveError` for a missing, HTML, truncated/corrupt or hostile archive,
    and for a ``target_dir`` that exists but was not made by this function.
    """
    target_dir = os.path.abspath(target_dir)
    if _complete(target_dir):
        return target_dir
    kind = _check_archive(path)
    opened = _open_zip(path) if kind == "zip" else _open_tar(path)
    with opened as archive:
        # every member is checked (and a tar read to its end) before anything is written
        plan = _zip_plan(path, archive) if kind == "zip" else _tar_plan(path, archive)
        parent = os.path.dirname(target_dir)
        os.makedirs(parent, exist_ok=True)
        with filelock.FileLock(target_dir + ".lock"):
            if _complete(target_dir):  # another process finished meanwhile
                return target_dir
            if os.path.isdir(target_dir) and not os.listdir(target_dir):
                os.rmdir(target_dir)  # an empty folder made beforehand
            if os.path.lexists(target_dir):
                raise ArchiveError(
                    f"{target_dir} already exists but is not an extraction of an archive; "
                    f"remove it or choose another folder for {path}"
                )
            tmp = tempfile.mkdtemp(
                prefix=f".{os.path.basename(target_dir)}.", suffix=".tmp", dir=parent
            )
            try:
                if kind == "zip":
                    _write_zip(path, archive, plan, tmp)
                else:
                    _write_tar(path, archive, plan, tmp)
                with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
                    json.dump({"archive": os.path.abspath(path), "size": os.path.getsize(path)}, f)
                os.rename(tmp, target_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    return target_dir


# ---------------------------------------------------------------- recognising the file


def _complete(target_dir: str) -> bool:
    return os.path.isfile(os.path.join(target_dir, MARKER))


def _looks_html(head: bytes) -> bool:
    start = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype", b"<html"))


def _decompress_start(head: bytes, codec: str) -> bytes:
    try:
        if codec == "gz":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1024)
        if codec == "bz2":
            import bz2

            return bz2.BZ2Decompressor().decompress(head, 1024)
        import lzma

        return lzma.LZMADecompressor().decompress(head, 1024)
    except (zlib.error, OSError, EOFError, ValueError):
        return b""


def _is_tar_header(block: bytes) -> bool:
    """A POSIX/GNU tar header (``ustar`` magic) or an old one with a valid checksum."""
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        stored = int(block[148:156].strip(b"\x00 ") or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:512])


def _check_archive(path: str) -> str:
    """The archive kind, or an :class:`ArchiveError` saying why ``path`` is not one."""
    if not os.path.isfile(path):
        raise ArchiveError(f"archive {path} does not exist; download it first")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if _looks_html(head):
        raise ArchiveError(
            f"{path} is an HTML page, not an archive (the server sent a web page; check the URL)"
        )
    kind = archive_kind(path)
    if kind is None:
        if path.lower().endswith(ARCHIVE_SUFFIXES) or not head:
            raise _corrupt(path)
        raise ArchiveError(f"{path} is not a tar or zip archive; check the file or the URL")
    return kind


def _corrupt(path: str, detail: str = "") -> ArchiveError:
    extra = f" ({detail})" if detail else ""
    return ArchiveError(f"{path} is truncated or corrupt{extra}; delete it and download again")


# ---------------------------------------------------------------- member checks


def _safe_parts(path: str, name: str) -> list[str]:
    """The path components of member ``name``, or an error if it is absolute or climbs."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"{path}: member {name!r} has an absolute path; refusing to extract")
    parts = [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{path}: member {name!r} climbs out with '..'; refusing to extract")
    if any("\x00" in p for p in parts):
        raise ArchiveError(f"{path}: member {name!r} has a NUL byte in its name; refusing")
    return parts


def _dest(root: str, parts: list[str]) -> str:
    dest = os.path.normpath(os.path.join(root, *parts))
    if not dest.startswith(root + os.sep):  # cannot happen after _safe_parts; belt and braces
        raise ArchiveError(f"member {'/'.join(parts)!r} resolves outside {root}; refusing")
    return dest


def _tar_plan(path: str, tf: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, list[str]]]:
    try:
        members = tf.getmembers()  # reads (and decompresses) the whole archive
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise _corrupt(path, str(e)) from None
    _check_end(path, tf)
    with open(path, "rb") as f:
        compressed = not _is_tar_header(f.read(512))
    size = os.path.getsize(path)
    plan = []
    for m in members:
        parts = _safe_parts(path, m.name)
        if m.issym() or m.islnk():
            kind = "symbolic" if m.issym() else "hard"
            raise ArchiveError(
                f"{path}: member {m.name!r} is a {kind} link to {m.linkname!r}; links are not "
                "allowed in model archives"
            )
        if m.ischr() or m.isblk():
            raise ArchiveError(f"{path}: member {m.name!r} is a device file; refusing to extract")
        if m.isfifo():
            raise ArchiveError(f"{path}: member {m.name!r} is a FIFO; refusing to extract")
        if not (m.isreg() or m.isdir()):
            raise ArchiveError(
                f"{path}: member {m.name!r} is a special file (tar type {m.type!r}); refusing"
            )
        if m.isreg() and not compressed and m.offset_data + m.size > size:
            raise _corrupt(path, f"member {m.name!r} is cut short")
        if parts:
            plan.append((m, parts))
    return plan


def _check_end(path: str, tf: tarfile.TarFile) -> None:
    """The member list must end at a zero block: tarfile silently stops at a damaged or cut
    header. Reading a compressed stream to its end also checks its CRC."""
    try:
        tf.fileobj.seek(tf.offset)
        end = tf.fileobj.read(tarfile.BLOCKSIZE)
        while tf.fileobj.read(1 << 20):
            pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise _corrupt(path, str(e)) from None
    if len(end) < tarfile.BLOCKSIZE:
        raise _corrupt(path, f"cut at byte {tf.offset} of the tar stream")
    if end.strip(b"\0"):
        raise _corrupt(path, f"damaged header at byte {tf.offset} of the tar stream")


def _zip_plan(path: str, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    plan = []
    for info in zf.infolist():
        parts = _safe_parts(path, info.filename)
        mode = info.external_attr >> 16
        if info.create_system == 3 and mode:  # unix attributes recorded
            if stat.S_ISLNK(mode):
                raise ArchiveError(
                    f"{path}: member {info.filename!r} is a symbolic link; links are not "
                    "allowed in model archives"
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
                raise ArchiveError(
                    f"{path}: member {info.filename!r} is a special file; refusing to extract"
                )
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{path}: member {info.filename!r} is encrypted; cannot extract")
        if parts:
            plan.append((info, parts))
    try:  # read every member once so damage shows before anything is written
        bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
        raise _corrupt(path, str(e)) from None
    if bad is not None:
        raise _corrupt(path, f"member {bad!r} fails its CRC check")
    return plan


# ---------------------------------------------------------------- writing


def _file_mode(mode: int) -> int:
    return (mode & 0o755) | 0o600


def _write_member(src, dest: str, mode: int) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(dest, _file_mode(mode))


def _open_tar(path: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise _corrupt(path, str(e)) from None


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _corrupt(path, str(e)) from None


def _write_tar(path: str, tf: tarfile.TarFile, plan, root: str) -> None:
    for m, parts in plan:
        dest = _dest(root, parts)
        try:
            if m.isdir():
                os.makedirs(dest, exist_ok=True)
                continue
            _write_member(tf.extractfile(m), dest, m.mode)
            os.utime(dest, (m.mtime, m.mtime))
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise _corrupt(path, f"member {m.name!r}: {e}") from None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot extract member {m.name!r} ({e})") from None


def _write_zip(path: str, zf: zipfile.ZipFile, plan, root: str) -> None:
    for info, parts in plan:
        dest = _dest(root, parts)
        try:
            if info.is_dir():
                os.makedirs(dest, exist_ok=True)
                continue
            mode = (info.external_attr >> 16) if info.create_system == 3 else 0
            with zf.open(info) as src:
                _write_member(src, dest, mode or 0o644)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise _corrupt(path, f"member {info.filename!r}: {e}") from None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot extract member {info.filename!r} ({e})") from None
