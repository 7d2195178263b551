"""ppdet.zoo.fetch and `python -m ppdet.zoo` against the local HTTP server (private PPDET_HOME)."""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import yaml

from ppdet.zoo import download as dl
from ppdet.zoo.__main__ import main
from ppdet.zoo.download import DownloadError
from ppdet.zoo.fetch import FetchError, expand_url, fetch
from ppdet.zoo.legacy import is_legacy, write_legacy_tar
from tests.conftest import ROOT
from tests.zoo.http_server import Serve, Status

PDPARAMS = b"\x80\x04fake-pdparams" * 100  # content is opaque to fetch


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tar(members: dict, gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_index(path, entries) -> str:
    base = {"family": "yolov3", "architecture": "YOLOv3", "backbone": "DarkNet", "config": "configs/x.yml",
            "schedule": "270e", "dataset": "coco", "metrics": {}, "format": "pdparams",
            "sha256": None, "md5": None, "size": None, "source": "test", "licence": "Apache-2.0"}  # fmt: skip
    path.write_text(yaml.safe_dump({"version": 1, "models": [{**base, **e} for e in entries]}))
    return str(path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_local_paths_are_returned_unchanged(tmp_path):
    (tmp_path / "w.pdparams").write_bytes(PDPARAMS)
    (tmp_path / "folder").mkdir()
    for ref in (str(tmp_path / "w.pdparams"), str(tmp_path / "w"), str(tmp_path / "folder")):
        assert fetch(ref) == ref
    assert (
        expand_url("ppdet://models/a.pdparams")
        == "https://paddledet.bj.bcebos.com/models/a.pdparams"
    )


def test_ppdet_scheme_downloads_the_expanded_url_with_the_index_checksum(monkeypatch, tmp_path):
    calls = []

    def fake_download(url, sha256=None, md5=None, **kw):
        calls.append((url, sha256))
        path = tmp_path / "got.pdparams"
        path.write_bytes(PDPARAMS)
        return str(path)

    monkeypatch.setattr(dl, "download", fake_download)
    url = "https://paddledet.bj.bcebos.com/models/m.pdparams"
    index = write_index(tmp_path / "i.yml", [{"name": "m", "urls": [url], "sha256": "a" * 64}])
    assert fetch("ppdet://models/m.pdparams", index=index) == str(tmp_path / "got.pdparams")
    assert calls == [(url, "a" * 64)]


def test_url_fetch_caches_and_works_offline_afterwards(http_server):
    url = http_server.route("/w/model.pdparams", Serve(PDPARAMS))
    path = fetch(url, progress=False)
    assert read(path) == PDPARAMS and path == dl.cache_path(url)
    assert fetch(url, progress=False) == path and fetch(url, offline=True) == path
    assert http_server.count("/w/model.pdparams") == 1  # the cache hit made no request
    with pytest.raises(DownloadError):
        fetch(http_server.url("/w/other.pdparams"), offline=True)


def test_zoo_name_uses_index_checksum_and_mirrors(http_server, tmp_path):
    good = http_server.route("/b/m.pdparams", Serve(PDPARAMS))
    dead = http_server.route("/a/m.pdparams", Status(404))
    index = write_index(
        tmp_path / "i.yml",
        [
            {"name": "m", "urls": [dead, good], "sha256": sha(PDPARAMS)},
            {
                "name": "bad",
                "urls": [http_server.route("/c/m.pdparams", Serve(PDPARAMS))],
                "sha256": "0" * 64,
            },
        ],
    )
    assert read(fetch("m", index=index, progress=False)) == PDPARAMS
    assert http_server.count("/a/m.pdparams") == 1 and http_server.count("/b/m.pdparams") == 1
    with pytest.raises(DownloadError, match="sha256"):
        fetch("bad", index=index, progress=False)
    with pytest.raises(DownloadError, match="sha256"):  # by URL too: the index checksum applies
        fetch(http_server.url("/c/m.pdparams"), index=index, progress=False)


def test_the_index_size_refuses_a_short_response_and_the_next_mirror_is_tried(
    http_server, tmp_path
):
    short = http_server.route("/a/m.pdparams", Serve(PDPARAMS[:50]))
    good = http_server.route("/b/m.pdparams", Serve(PDPARAMS))
    index = write_index(
        tmp_path / "i.yml", [{"name": "m", "urls": [short, good], "size": len(PDPARAMS)}]
    )
    assert read(fetch("m", index=index, progress=False)) == PDPARAMS
    assert not os.path.exists(dl.cache_path(short))
    index = write_index(tmp_path / "j.yml", [{"name": "m", "urls": [short], "size": len(PDPARAMS)}])
    with pytest.raises(DownloadError, match=f"announces 50 bytes, the index says {len(PDPARAMS)}"):
        fetch("m", index=index, progress=False)


def test_unknown_reference_is_one_line_with_close_names(tmp_path):
    index = write_index(
        tmp_path / "i.yml", [{"name": "yolov3_darknet53_270e_coco", "urls": ["https://x/y"]}]
    )
    with pytest.raises(FetchError) as info:
        fetch("yolov3_darknet53_270e", index=index)
    text = str(info.value)
    assert "\n" not in text and "did you mean yolov3_darknet53_270e_coco?" in text
    assert "python -m ppdet.zoo list" in text
    with pytest.raises(FetchError, match="not a local file, a URL, nor a model zoo name \\(list"):
        fetch("nothing_like_it", index=index)


def test_archives_are_extracted_beside_the_download(http_server, ppdet_home):
    published = make_tar(
        {"m/model.safetensors": b"st", "m/model.pdparams": PDPARAMS, "m/meta.json": b"{}"}
    )
    url = http_server.route("/m.tar.gz", Serve(published))
    path = fetch(url, progress=False)
    assert path == os.path.join(os.path.dirname(dl.cache_path(url)), "m", "m", "model.safetensors")
    assert read(path) == b"st" and fetch(url, offline=True) == path

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/b/only.pdparams", PDPARAMS)
        zf.writestr("a/readme.txt", "x")
    zpath = fetch(http_server.route("/z.zip", Serve(buf.getvalue())), progress=False)
    assert zpath.endswith(os.path.join("z", "a", "b", "only.pdparams")) and read(zpath) == PDPARAMS

    for route, members, what in [
        ("/none.tar", {"d/readme.txt": b"x"}, "no weights"),
        ("/two.tar", {"a.pdparams": PDPARAMS, "b.pdparams": PDPARAMS}, "2 .pdparams files"),
    ]:
        with pytest.raises(FetchError, match=what):
            fetch(http_server.route(route, Serve(make_tar(members, gz=False))), progress=False)


def test_legacy_tarball_gives_the_variable_folder(http_server, tmp_path):
    tensors = {
        "conv1_weights": np.ones((2, 3, 1, 1), np.float32),
        "bn_conv1_scale": np.ones(2, np.float32),
    }
    tar = tmp_path / "old_model.tar"
    write_legacy_tar(tensors, str(tar), top="old_model")
    path = fetch(http_server.route("/old_model.tar", Serve(tar.read_bytes())), progress=False)
    assert os.path.isdir(path) and os.path.basename(path) == "old_model" and is_legacy(path)
    assert sorted(os.listdir(path)) == ["bn_conv1_scale", "conv1_weights"]


def test_local_archive_is_extracted_into_the_cache(tmp_path, ppdet_home):
    archive = tmp_path / "local.tgz"
    archive.write_bytes(make_tar({"local/model.pdparams": PDPARAMS}))
    path = fetch(str(archive))
    assert path.startswith(os.path.join(ppdet_home, "extracted")) and read(path) == PDPARAMS
    assert fetch(str(archive)) == path  # extracted once


def test_cli_list_info_fetch_verify(http_server, tmp_path, capsys):
    url = http_server.route("/v/w.pdparams", Serve(PDPARAMS))
    index = write_index(
        tmp_path / "i.yml",
        [
            {
                "name": "good",
                "urls": [url],
                "sha256": sha(PDPARAMS),
                "metrics": {"box_ap": {608: 39.1, 320: 34.8}},
            },
            {
                "name": "nosum",
                "family": "ssd",
                "urls": [http_server.route("/v/n.pdparams", Serve(b"\x80\x02n" * 50))],
            },
        ],
    )
    assert main(["list", "--index", index]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "39.1/34.8" in out and "nosum" in out
    assert main(["list", "--index", index, "--family", "ssd"]) == 0
    assert "good" not in capsys.readouterr().out

    assert main(["verify", "good", "--index", index]) == 1
    assert "good is not downloaded: python -m ppdet.zoo fetch good" in capsys.readouterr().err
    assert main(["fetch", "good", "--index", index, "--quiet"]) == 0
    path = capsys.readouterr().out.strip()
    assert read(path) == PDPARAMS
    assert main(["info", "good", "--index", index]) == 0
    assert f"cached: {path}" in capsys.readouterr().out
    assert main(["verify", "good", "--index", index]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main(["verify", path, "--index", index]) == 0  # a file: found by its checksum

    copy = tmp_path / "w.pdparams"  # same name as the indexed file, other content
    copy.write_bytes(b"tampered")
    assert main(["verify", str(copy), "--index", index]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: checksum mismatch") and err.count("\n") == 1

    assert main(["fetch", "nosum", "--index", index, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["verify", "nosum", "--index", index]) == 1
    assert "the index records no checksum" in capsys.readouterr().err
    assert main(["fetch", "goood", "--index", index]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean good?" in err


def test_module_entry_point_errors_are_one_line(tmp_path):
    env = dict(os.environ, PPDET_HOME=str(tmp_path), PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "ppdet.zoo", "fetch", "yolov3_darknet53_270e"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "did you mean yolov3_darknet53_270e_coco" in proc.stderr
