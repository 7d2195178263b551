"""Archive recognition and safe, atomic extraction (tar, tar.gz, zip; hostile members refused)."""

import io
import os
import stat
import tarfile
import threading
import zipfile

import pytest

from ppdet.zoo.archive import MARKER, ArchiveError, archive_kind, extract

FILES = {"model/model.pdparams": b"\x80\x04weights" * 100, "model/infer_cfg.yml": b"arch: YOLOv3\n"}


def make_tar(path, entries, mode="w"):
    """``entries``: (name, bytes) for files, or a ready TarInfo (links, devices, FIFOs, dirs)."""
    with tarfile.open(path, mode) as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return str(path)


def make_zip(path, entries):
    """``entries``: (name or ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return str(path)


def info(name, type_, **attrs):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    for k, v in attrs.items():
        setattr(ti, k, v)
    return ti


def tree(root):
    """Every path under ``root`` (files, folders, links), relative."""
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(folder, name), root))
    return out


def read_tree(root):
    return {
        os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(root)
        for f in files
        if f != MARKER
    }


@pytest.fixture
def layout(tmp_path):
    """(archive folder, target, outside folder) under tmp_path."""
    (tmp_path / "arch").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path / "arch", str(tmp_path / "out" / "target"), tmp_path / "outside"


@pytest.mark.parametrize(
    "name,kind", [("m.tar", "tar"), ("m.tar.gz", "tar"), ("m.tgz", "tar"), ("m.zip", "zip")]
)
def test_plain_archives_extract_with_their_content(layout, name, kind):
    arch, target, _ = layout
    members = [info("model", tarfile.DIRTYPE, mode=0o755)] + list(FILES.items())
    if kind == "zip":
        path = make_zip(arch / name, [("model/", b"")] + list(FILES.items()))
    else:
        path = make_tar(arch / name, members, "w:gz" if name.endswith("gz") else "w")
    assert archive_kind(path) == kind
    assert extract(path, target) == target
    assert read_tree(target) == FILES
    assert os.path.isfile(os.path.join(target, MARKER))
    # nothing but the target and its lock beside it: the temp folder was renamed into place
    assert set(os.listdir(os.path.dirname(target))) <= {"target", "target.lock"}


def test_archive_kind_goes_by_content(tmp_path):
    tgz = make_tar(tmp_path / "a.tar.gz", list(FILES.items()), "w:gz")
    disguised = tmp_path / "download.bin"
    disguised.write_bytes(open(tgz, "rb").read())
    assert archive_kind(str(disguised)) == "tar"
    zipped = tmp_path / "weights.pdparams"
    zipped.write_bytes(open(make_zip(tmp_path / "z.zip", list(FILES.items())), "rb").read())
    assert archive_kind(str(zipped)) == "zip"
    page = tmp_path / "model.tar.gz"
    page.write_bytes(b"<!DOCTYPE html><html></html>")
    assert archive_kind(str(page)) is None
    pickle_file = tmp_path / "m.pdparams"
    pickle_file.write_bytes(b"\x80\x04\x95" + b"\x00" * 600)
    assert archive_kind(str(pickle_file)) is None
    assert archive_kind(str(tmp_path / "missing.tar")) is None


def test_a_complete_target_is_returned_without_extracting_again(layout):
    arch, target, _ = layout
    path = make_tar(arch / "m.tar", list(FILES.items()))
    extract(path, target)
    os.remove(path)  # a second extraction would fail: the finished folder is enough
    assert extract(path, target) == target and read_tree(target) == FILES


def test_an_empty_target_is_filled_and_a_foreign_one_refused(layout):
    arch, target, _ = layout
    path = make_tar(arch / "m.tar", list(FILES.items()))
    os.makedirs(target)
    assert read_tree(extract(path, target)) == FILES
    other = os.path.join(os.path.dirname(target), "other")
    os.makedirs(other)
    open(os.path.join(other, "mine.txt"), "w").close()
    with pytest.raises(ArchiveError, match="already exists"):
        extract(path, other)
    assert os.listdir(other) == ["mine.txt"]


def test_concurrent_extractions_take_turns(layout):
    arch, target, _ = layout
    path = make_tar(arch / "m.tgz", list(FILES.items()), "w:gz")
    results, errors = [], []

    def run():
        try:
            results.append(extract(path, target))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [target] * 4 and read_tree(target) == FILES


def test_special_permission_bits_are_dropped(layout):
    arch, target, _ = layout
    exe = tarfile.TarInfo("bin/tool")
    exe.size, exe.mode = 3, 0o4777
    with tarfile.open(arch / "m.tar", "w") as tf:
        tf.addfile(exe, io.BytesIO(b"abc"))
    extract(str(arch / "m.tar"), target)
    assert stat.S_IMODE(os.stat(os.path.join(target, "bin", "tool")).st_mode) == 0o755


def hostile_tar(arch, outside):
    """name -> (archive path, offending member)."""
    good = ("good.txt", b"fine")  # comes first: must not be written either
    return {
        "absolute": (
            make_tar(arch / "abs.tar", [good, (str(outside / "abs.txt"), b"x")]),
            str(outside / "abs.txt"),
        ),
        "dotdot": (
            make_tar(arch / "up.tar.gz", [good, ("a/../../../outside/up.txt", b"x")], "w:gz"),
            "a/../../../outside/up.txt",
        ),
        "symlink": (
            make_tar(
                arch / "sym.tar",
                [
                    good,
                    info("link", tarfile.SYMTYPE, linkname=str(outside)),
                    ("link/pwned.txt", b"x"),
                ],
            ),
            "link",
        ),
        "hardlink": (
            make_tar(
                arch / "hard.tar", [good, info("hl", tarfile.LNKTYPE, linkname="../../outside/h")]
            ),
            "hl",
        ),
        "device": (
            make_tar(
                arch / "dev.tar", [good, info("null", tarfile.CHRTYPE, devmajor=1, devminor=3)]
            ),
            "null",
        ),
        "fifo": (make_tar(arch / "fifo.tar", [good, info("pipe", tarfile.FIFOTYPE)]), "pipe"),
    }


def hostile_zip(arch, outside):
    link = zipfile.ZipInfo("link")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    good = ("good.txt", b"fine")
    return {
        "zip-dotdot": (
            make_zip(arch / "up.zip", [good, ("../outside/up.txt", b"x")]),
            "../outside/up.txt",
        ),
        "zip-absolute": (
            make_zip(arch / "abs.zip", [good, (str(outside / "a.txt"), b"x")]),
            str(outside / "a.txt"),
        ),
        "zip-symlink": (make_zip(arch / "sym.zip", [good, (link, str(outside))]), "link"),
    }


CASES = [
    "absolute",
    "dotdot",
    "symlink",
    "hardlink",
    "device",
    "fifo",
    "zip-dotdot",
    "zip-absolute",
    "zip-symlink",
]
REASON = {
    "absolute": "absolute",
    "dotdot": "'..'",
    "symlink": "symbolic link",
    "hardlink": "hard link",
    "device": "device",
    "fifo": "FIFO",
    "zip-dotdot": "'..'",
    "zip-absolute": "absolute",
    "zip-symlink": "symbolic link",
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_archives_are_refused_and_write_nothing(tmp_path, layout, case):
    arch, target, outside = layout
    path, member = {**hostile_tar(arch, outside), **hostile_zip(arch, outside)}[case]
    before = tree(tmp_path)
    with pytest.raises(ArchiveError) as err:
        extract(path, target)
    msg = str(err.value)
    assert path in msg and repr(member) in msg and REASON[case] in msg and "\n" not in msg
    assert not os.path.exists(target) and os.listdir(outside) == []
    assert tree(tmp_path) == before


def test_an_html_page_is_reported_as_such(layout):
    arch, target, _ = layout
    page = arch / "model.tar.gz"
    page.write_bytes(b"\n<!DOCTYPE html>\n<html><body>Not found</body></html>")
    with pytest.raises(ArchiveError) as err:
        extract(str(page), target)
    assert str(err.value) == (
        f"{page} is an HTML page, not an archive (the server sent a web page; check the URL)"
    )
    assert not os.path.exists(target)


def damaged(tmp_path, case):
    """Archive bytes of three 20000-byte members, damaged as ``case`` says."""
    big = {f"model/part{i}.bin": os.urandom(20000) for i in range(3)}
    if case.endswith(".zip"):
        data = open(make_zip(tmp_path / "full", list(big.items())), "rb").read()
    else:
        gz = "gz" in case
        data = open(
            make_tar(tmp_path / "full", list(big.items()), "w:gz" if gz else "w"), "rb"
        ).read()
    second = 512 + 20480  # the second tar header: one header + the first member's padded data
    if case.startswith("half"):
        return data[: len(data) // 2]
    if case == "cut-at-header.tar":  # tarfile alone would just see two fewer members
        return data[:second]
    if case == "bad-header.tar":
        return data[:second] + b"\xff" * 512 + data[second + 512 :]
    if case.startswith("flipped"):  # one byte changed inside compressed member data
        i = len(data) // 3
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
    return b""


@pytest.mark.parametrize(
    "case",
    [
        "half.tar.gz",
        "half.tar",
        "half.zip",
        "empty.tar",
        "cut-at-header.tar",
        "bad-header.tar",
        "flipped.tar.gz",
        "flipped.zip",
    ],
)
def test_truncated_or_corrupt_archives_are_reported(tmp_path, layout, case):
    arch, target, _ = layout
    cut = arch / case
    cut.write_bytes(damaged(tmp_path, case))
    before = tree(tmp_path)
    with pytest.raises(ArchiveError) as err:
        extract(str(cut), target)
    assert str(err.value).startswith(f"{cut} is truncated or corrupt")
    assert str(err.value).endswith("; delete it and download again")
    assert tree(tmp_path) == before


def test_a_file_that_is_no_archive_is_named(layout):
    arch, target, _ = layout
    other = arch / "notes.txt"
    other.write_bytes(b"just text")
    with pytest.raises(ArchiveError, match="is not a tar or zip archive"):
        extract(str(other), target)
    with pytest.raises(ArchiveError, match="does not exist"):
        extract(str(arch / "missing.tar"), target)
