"""Downloads against a real HTTP server on 127.0.0.1: cache, resume, retries, checksums, locks."""

import hashlib
import os
import signal
import subprocess
import sys
import time
import types

import pytest

from ppdet.zoo import download as dl
from ppdet.zoo.download import DownloadError, cache_path, download, is_offline
from tests.zoo.http_server import Drop, Redirect, Serve, Silent, Stall, Status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = bytes(range(256)) * 800  # 204800 bytes
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()
FAST = dict(progress=False, backoff=0.01, timeout=(2.0, 2.0))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_home_offline_flag_and_cache_layout(monkeypatch, ppdet_home):
    assert dl.ppdet_home() == ppdet_home
    monkeypatch.delenv("PPDET_HOME")
    assert dl.ppdet_home() == os.path.expanduser("~/.cache/ppdet")
    for value, expected in [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("", False)]:
        monkeypatch.setenv("PPDET_OFFLINE", value)
        assert is_offline() is expected

    a = cache_path("http://a.example/x/model.tar.gz?v=1", root="/r")
    b = cache_path("http://b.example/y/model.tar.gz", root="/r")
    key = hashlib.sha256(b"http://a.example/x/model.tar.gz?v=1").hexdigest()[:16]
    assert a == f"/r/downloads/{key}/model.tar.gz"
    assert os.path.basename(b) == "model.tar.gz" and a != b
    assert os.path.basename(cache_path("http://h/")) == "download"
    assert os.path.basename(cache_path("http://h/a/%2E%2E")) == "download"


def test_plain_download_verifies_and_caches(http_server, ppdet_home):
    url = http_server.route("/files/model.pdparams", Serve(DATA))
    path = download(url, sha256=SHA, md5=MD5, **FAST)
    assert path == cache_path(url) and path.startswith(ppdet_home + os.sep)
    assert read(path) == DATA
    assert not os.path.exists(path + ".part")
    assert http_server.count("/files/model.pdparams") == 1
    assert "range" not in http_server.requests[0].headers


def test_cache_hit_makes_no_request_even_with_the_server_gone(http_server, monkeypatch):
    url = http_server.route("/m.bin", Serve(DATA))
    path = download(url, sha256=SHA, **FAST)
    http_server.stop()

    def no_hashing(path):
        raise AssertionError("the verified marker should spare re-hashing")

    monkeypatch.setattr(dl, "file_sums", no_hashing)
    assert download(url, sha256=SHA, **FAST) == path
    assert download(url, **FAST) == path  # no checksum: presence is enough
    assert http_server.count() == 1


def test_a_cached_file_changed_on_disk_is_fetched_again(http_server):
    url = http_server.route("/m.bin", Serve(DATA))
    path = download(url, sha256=SHA, **FAST)
    with open(path, "wb") as f:
        f.write(b"tampered")
    assert download(url, sha256=SHA, **FAST) == path
    assert read(path) == DATA
    assert http_server.count("/m.bin") == 2


def test_resume_after_a_dropped_connection_on_the_next_call(http_server):
    half = len(DATA) // 2
    url = http_server.route("/m.bin", Drop(DATA, after=half), Serve(DATA))
    with pytest.raises(DownloadError) as err:
        download(url, sha256=SHA, retries=0, **FAST)
    path = cache_path(url)
    assert url in str(err.value) and "partial file" in str(err.value)
    assert os.path.getsize(path + ".part") == half and not os.path.exists(path)

    assert download(url, sha256=SHA, retries=0, **FAST) == path
    assert read(path) == DATA
    second = http_server.requests_for("/m.bin")[1]
    assert second.headers["range"] == f"bytes={half}-"


def test_resume_within_one_call_by_retrying(http_server):
    url = http_server.route("/m.bin", Drop(DATA, after=1000), Serve(DATA))
    path = download(url, sha256=SHA, retries=2, **FAST)
    assert read(path) == DATA
    assert [r.headers.get("range") for r in http_server.requests_for("/m.bin")] == [
        None,
        "bytes=1000-",
    ]


def test_server_ignoring_range_starts_over(http_server):
    url = http_server.route("/m.bin", Serve(DATA, ranges=False))
    part = cache_path(url) + ".part"
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(b"x" * 5000)  # would corrupt the file if appended to
    path = download(url, sha256=SHA, **FAST)
    assert read(path) == DATA
    assert http_server.requests_for("/m.bin")[0].headers["range"] == "bytes=5000-"


@pytest.mark.parametrize("extra", [0, 7], ids=["part-complete", "part-too-long"])
def test_416_for_a_complete_or_stale_partial_file(http_server, extra):
    url = http_server.route("/m.bin", Serve(DATA))
    part = cache_path(url) + ".part"
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(DATA + b"z" * extra)
    path = download(url, sha256=SHA, **FAST)
    assert read(path) == DATA
    # complete: the 416 says so and nothing is fetched again; too long: dropped and refetched
    assert http_server.count("/m.bin") == (1 if extra == 0 else 2)


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_wrong_checksum_deletes_the_download_and_names_both_sums(http_server, algo):
    url = http_server.route("/m.bin", Serve(DATA))
    wrong = "0" * (64 if algo == "sha256" else 32)
    with pytest.raises(DownloadError) as err:
        download(url, **{algo: wrong}, **FAST)
    actual = SHA if algo == "sha256" else MD5
    msg = str(err.value)
    assert url in msg and wrong in msg and actual in msg and "\n" not in msg
    assert os.listdir(os.path.dirname(cache_path(url))) in ([], ["m.bin.lock"])


@pytest.mark.parametrize("code", [404, 403])
def test_client_errors_are_not_retried(http_server, code):
    url = http_server.route("/m.bin", Status(code))
    with pytest.raises(DownloadError) as err:
        download(url, sha256=SHA, retries=4, **FAST)
    assert url in str(err.value) and str(code) in str(err.value)
    assert http_server.count("/m.bin") == 1


@pytest.mark.parametrize(
    "first",
    [Status(500), Status(503), Status(429, {"Retry-After": "0"})],
    ids=["500", "503", "429"],
)
def test_server_errors_and_429_are_retried(http_server, first):
    url = http_server.route("/m.bin", first, Serve(DATA))
    assert read(download(url, sha256=SHA, retries=2, **FAST)) == DATA
    assert http_server.count("/m.bin") == 2


def test_backoff_doubles_and_retry_after_is_honoured(http_server, monkeypatch):
    slept = []
    monkeypatch.setattr(
        dl,
        "time",
        types.SimpleNamespace(sleep=slept.append, time=time.time, monotonic=time.monotonic),
    )
    url = http_server.route("/m.bin", Status(500), Status(502), Status(503), Serve(DATA))
    download(url, retries=3, progress=False, backoff=0.5)
    assert slept == [0.5, 1.0, 2.0]
    slept.clear()
    url = http_server.route("/n.bin", Status(429, {"Retry-After": "7"}), Serve(DATA))
    download(url, retries=3, progress=False, backoff=0.5)
    assert slept == [7.0]


def test_retries_run_out_with_a_clear_message(http_server):
    url = http_server.route("/m.bin", Status(500))
    with pytest.raises(DownloadError) as err:
        download(url, retries=2, **FAST)
    assert url in str(err.value) and "HTTP 500" in str(err.value) and "3 attempts" in str(err.value)
    assert http_server.count("/m.bin") == 3


def test_a_long_retry_after_fails_instead_of_waiting(http_server):
    url = http_server.route("/m.bin", Status(503, {"Retry-After": "3600"}))
    with pytest.raises(DownloadError, match="3600 s"):
        download(url, retries=4, **FAST)
    assert http_server.count("/m.bin") == 1


def test_read_timeout_is_retried_then_reported(http_server):
    url = http_server.route("/m.bin", Stall(DATA, delay=30))
    with pytest.raises(DownloadError) as err:
        download(url, retries=1, progress=False, backoff=0.01, timeout=(2.0, 0.3))
    assert url in str(err.value) and "timed out" in str(err.value)
    assert http_server.count("/m.bin") == 2

    url = http_server.route("/n.bin", Stall(DATA, delay=30), Serve(DATA))
    assert read(download(url, retries=1, progress=False, backoff=0.01, timeout=(2.0, 0.3))) == DATA


def test_a_silent_server_fails_within_the_stall_budget_saying_it_timed_out(http_server):
    url = http_server.route("/m.tar", Silent(delay=60))  # accepts, never answers
    with pytest.raises(DownloadError) as err:
        download(
            url, progress=False, backoff=0.01, timeout=(2.0, 0.3), stall_timeout=1.0, retries=50
        )
    msg = str(err.value)
    assert url in msg and "timed out: no data for 1 s" in msg and "\n" not in msg
    assert 1 <= http_server.count("/m.tar") < 51  # the budget, not the retries, ended it
    assert not os.path.exists(cache_path(url))


def _fake_clock(monkeypatch):
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    monkeypatch.setattr(
        dl, "time", types.SimpleNamespace(monotonic=lambda: now[0], sleep=sleep, time=time.time)
    )
    return now


def test_default_budget_each_attempt_waits_tens_of_seconds_and_all_about_a_minute(monkeypatch):
    now = _fake_clock(monkeypatch)
    reads = []

    def silent(session, url, part, progress, timeout, size, stall):
        reads.append(timeout[1])
        now[0] += timeout[1]  # the read timeout passes without a byte
        raise dl._Retryable("timed out (Read timed out)")

    monkeypatch.setattr(dl, "_fetch_once", silent)
    with pytest.raises(DownloadError) as err:
        download("http://127.0.0.1:9/m.tar", progress=False)  # every default
    # 20 s + 1 s pause + 20 s + 2 s pause + the 17 s left of the 60 s budget
    assert reads == [20.0, 20.0, 17.0] and now[0] == 60.0
    assert "timed out: no data for 60 s (3 attempts, last: timed out (Read timed out))" in str(
        err.value
    )


def test_data_arriving_renews_the_budget(monkeypatch, tmp_path):
    now = _fake_clock(monkeypatch)
    calls = []

    def trickle(session, url, part, progress, timeout, size, stall):
        calls.append(timeout[1])
        now[0] += timeout[1]
        if len(calls) < 5:
            stall.fed()  # some bytes came, then the connection dropped
            raise dl._Retryable("connection dropped after 10 bytes")
        with open(part, "wb") as f:
            f.write(DATA)

    monkeypatch.setattr(dl, "_fetch_once", trickle)
    path = download("http://127.0.0.1:9/m.bin", sha256=SHA, progress=False, root=str(tmp_path))
    assert read(path) == DATA and calls == [20.0] * 5 and now[0] > 60


def test_connection_refused_is_retried_then_reported(http_server):
    url = http_server.url("/m.bin")
    http_server.stop()
    with pytest.raises(DownloadError, match="connection failed.*2 attempts"):
        download(url, retries=1, **FAST)


def test_redirect_is_followed_and_cached_under_the_first_url(http_server):
    http_server.route("/real/model.bin", Serve(DATA))
    url = http_server.route("/latest/model.bin", Redirect("/real/model.bin"))
    path = download(url, sha256=SHA, **FAST)
    assert path == cache_path(url) and read(path) == DATA
    assert http_server.count("/latest/model.bin") == 1 and http_server.count("/real/model.bin") == 1


def test_offline_mode_names_the_url_and_where_to_put_the_file(http_server, monkeypatch):
    url = http_server.route("/m.bin", Serve(DATA))
    monkeypatch.setenv("PPDET_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        download(url, sha256=SHA, **FAST)
    assert url in str(err.value) and cache_path(url) in str(err.value)
    assert http_server.count() == 0

    # a file put there by hand is used (and verified) without the network
    os.makedirs(os.path.dirname(cache_path(url)))
    with open(cache_path(url), "wb") as f:
        f.write(DATA)
    assert download(url, sha256=SHA, **FAST) == cache_path(url)
    with pytest.raises(DownloadError, match="does not match"):
        download(url, sha256="1" * 64, **FAST)
    monkeypatch.delenv("PPDET_OFFLINE")
    with pytest.raises(DownloadError, match="offline mode"):
        download(http_server.url("/other.bin"), offline=True, **FAST)
    assert http_server.count() == 0


PAGE = b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>"


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_instead_of_the_file_is_reported(http_server, ctype):
    url = http_server.route("/model.tar.gz", Serve(PAGE, content_type=ctype))
    with pytest.raises(DownloadError, match="HTML page") as err:
        download(url, **FAST)
    assert url in str(err.value)
    assert not os.path.exists(cache_path(url)) and not os.path.exists(cache_path(url) + ".part")
    # a URL that names an HTML page is downloaded as such
    url = http_server.route("/index.html", Serve(PAGE, content_type=ctype))
    assert read(download(url, **FAST)) == PAGE


def _tar_bytes():
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("m/model.pdparams")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x80\x04ab"))
    return buf.getvalue()


@pytest.mark.parametrize("name", ["m.tar", "m.pdparams", "m.bin"])
def test_an_empty_response_is_refused_and_never_cached(http_server, name):
    url = http_server.route(f"/{name}", Serve(b""))
    for _ in range(2):  # refused each time: nothing was cached by the first call
        with pytest.raises(DownloadError, match=r"empty file \(0 bytes\).*nothing cached") as err:
            download(url, **FAST)
        assert url in str(err.value)
    assert http_server.count(f"/{name}") == 2
    assert os.listdir(os.path.dirname(cache_path(url))) in ([], [f"{name}.lock"])


def test_a_response_of_another_size_than_the_index_is_refused(http_server):
    url = http_server.route("/m.bin", Serve(DATA))
    with pytest.raises(DownloadError, match=f"announces {len(DATA)} bytes, the index says 999999"):
        download(url, size=999999, **FAST)
    assert not os.path.exists(cache_path(url))
    assert read(download(url, size=len(DATA), **FAST)) == DATA


@pytest.mark.parametrize(
    "name, body, what",
    [
        ("m.tar", DATA, "not a tar or zip archive"),
        ("m.tar.gz", b"\x1f\x8b" + DATA, "not a tar or zip archive"),
        ("m.zip", DATA, "not a tar or zip archive"),
        ("m.pdparams", DATA, "not a pickled checkpoint"),
        ("m.safetensors", DATA, "not a safetensors file"),
    ],
)
def test_a_response_that_is_not_what_its_name_says_is_refused(http_server, name, body, what):
    url = http_server.route(f"/{name}", Serve(body))
    with pytest.raises(DownloadError, match=what) as err:
        download(url, **FAST)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert not os.path.exists(cache_path(url)) and not os.path.exists(cache_path(url) + ".part")


def test_a_real_archive_passes_and_a_matching_checksum_outranks_the_header_check(http_server):
    tar = _tar_bytes()
    url = http_server.route("/m.tar", Serve(tar))
    assert read(download(url, size=len(tar), **FAST)) == tar
    url = http_server.route("/odd.pdparams", Serve(DATA))  # no pickle header, but verified
    assert read(download(url, sha256=SHA, **FAST)) == DATA


def test_an_empty_file_left_in_the_cache_is_a_miss(http_server):
    url = http_server.route("/m.pdparams", Serve(b"\x80\x04" + DATA))
    path = cache_path(url)
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()  # what an older version cached from an empty response
    assert read(download(url, **FAST)) == b"\x80\x04" + DATA
    assert http_server.count("/m.pdparams") == 1
    with open(path, "wb"):
        pass
    with pytest.raises(DownloadError, match="offline mode"):
        download(url, offline=True, **FAST)


def test_progress_bar_goes_to_stderr(http_server, capsys):
    url = http_server.route("/m.bin", Serve(DATA))
    download(url, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and url in captured.err and "m.bin" in captured.err


# The child sets its own SIGINT disposition: started from a background job (SIGINT ignored,
# which children inherit) Python would not install its handler and Ctrl-C would never arrive.
CHILD = """
import pathlib, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from ppdet.zoo.download import download
pathlib.Path(sys.argv[3]).touch()
print(download(sys.argv[1], sys.argv[2], progress=True, backoff=0.01))
"""


def _child(url, started, err_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(err_path, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, url, SHA, started],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
        )


def _wait_for(cond, what, limit=20.0):
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_two_processes_download_once(http_server, tmp_path):
    errs = [str(tmp_path / f"err{i}.txt") for i in range(2)]

    def second_is_waiting():  # hold the first download until the other process blocks on the lock
        _wait_for(
            lambda: any("waiting for another process" in open(e).read() for e in errs),
            "the second process to wait on the lock",
        )

    url = http_server.route("/m.bin", Serve(DATA, gate=second_is_waiting))
    procs = [_child(url, str(tmp_path / f"started{i}"), errs[i]) for i in range(2)]
    outs = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [open(e).read() for e in errs]
    assert outs == [cache_path(url)] * 2 and read(outs[0]) == DATA
    assert http_server.count("/m.bin") == 1


def test_ctrl_c_leaves_only_the_resumable_part_file(http_server, tmp_path):
    half = len(DATA) // 2
    url = http_server.route("/m.bin", Serve(DATA, chunk=half, delay=60), Serve(DATA))
    path = cache_path(url)
    proc = _child(url, str(tmp_path / "started"), str(tmp_path / "err.txt"))
    try:
        part = path + ".part"
        _wait_for(
            lambda: os.path.isfile(part) and os.path.getsize(part) == half,
            "the first half of the file",
        )
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in open(tmp_path / "err.txt").read()
    assert not os.path.exists(path) and os.path.getsize(path + ".part") == half

    assert download(url, sha256=SHA, **FAST) == path and read(path) == DATA
    assert http_server.requests_for("/m.bin")[1].headers["range"] == f"bytes={half}-"
