"""The tools take weights by URL: downloaded once, verified, cached (no request on a hit), and
--offline turns a needed download into one line naming the URL and where to put the file."""

import os
import subprocess
import sys

import paddle

import ppdet
from ppdet.engine.checkpoint import save_weights
from tests.conftest import DEMO_CONFIG, ROOT, tiny_overrides
from tests.zoo.http_server import Serve

# The demo model has two pyramid levels; the v0.1 names describe YOLOv3's three (strides 32,
# 16, 8), so the legacy test puts the third back.
THREE_LEVELS = [
    "MobileNet.feature_maps=[4, 6, 13]",
    "YOLOv3Head.anchors=[[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119],"
    " [116, 90], [156, 198], [373, 326]]",
    "YOLOv3Head.anchor_masks=[[6, 7, 8], [3, 4, 5], [0, 1, 2]]",
    "YOLOv3Loss.downsample=[32, 16, 8]",
    "BBoxPostProcess.decode.downsample_ratio=32",
]


def infer(args, home):
    env = dict(os.environ, PYTHONWARNINGS="ignore", PPDET_HOME=home)
    env.pop("PPDET_OFFLINE", None)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "infer.py"), "-c", DEMO_CONFIG, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_infer_with_weights_from_a_url_then_from_the_cache_then_offline(
    tiny_demo_data, tmp_path, http_server, ppdet_home
):
    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out"))
    paddle.seed(3)
    model = ppdet.build_model(ppdet.load_config(DEMO_CONFIG, opts))
    path = save_weights(model, str(tmp_path / "trained"))
    url = http_server.route("/models/demo.pdparams", Serve(open(path, "rb").read()))
    images = ["--infer_dir", os.path.join(tiny_demo_data, "samples"), "--draw_threshold", "0.0"]

    first = infer(
        ["-o", *opts, f"weights={url}", *images, "--output_dir", str(tmp_path / "a")], ppdet_home
    )
    assert first.returncode == 0, first.stderr
    assert "loaded 204, shape-mismatched 0, missing 0, unused 0" in first.stdout
    assert http_server.count("/models/demo.pdparams") == 1

    http_server.stop()  # a cache hit needs no server
    second = infer(
        ["-o", *opts, f"weights={url}", *images, "--output_dir", str(tmp_path / "b")], ppdet_home
    )
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "a" / "bbox.json").read_text() == (tmp_path / "b" / "bbox.json").read_text()

    other = url.replace("demo.pdparams", "other.pdparams")
    third = infer(["-o", *opts, f"weights={other}", *images, "--offline"], ppdet_home)
    lines = third.stderr.strip().splitlines()
    assert third.returncode == 1 and len(lines) == 1, third.stderr
    assert other in lines[0] and ppdet_home in lines[0]


def test_infer_with_a_legacy_v01_tarball_url_converts_it(
    tiny_demo_data, tmp_path, http_server, ppdet_home
):
    from ppdet.zoo.legacy import to_legacy, write_legacy_tar

    opts = tiny_overrides(tiny_demo_data, str(tmp_path / "out")) + THREE_LEVELS
    paddle.seed(5)
    model = ppdet.build_model(ppdet.load_config(DEMO_CONFIG, opts))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    tar = str(tmp_path / "yolov3_mobilenet_v1.tar")
    write_legacy_tar(to_legacy(state, "yolov3_mobilenet_v1"), tar)
    url = http_server.route(
        "/object_detection/yolov3_mobilenet_v1.tar", Serve(open(tar, "rb").read())
    )
    reference = save_weights(model, str(tmp_path / "direct"))
    images = ["--infer_dir", os.path.join(tiny_demo_data, "samples"), "--draw_threshold", "0.0"]

    legacy = infer(
        ["-o", *opts, f"weights={url}", *images, "--output_dir", str(tmp_path / "a")], ppdet_home
    )
    assert legacy.returncode == 0, legacy.stderr
    assert (
        "legacy" in legacy.stdout
        and "loaded 241, shape-mismatched 0, missing 0, unused 0" in legacy.stdout
    )
    direct = infer(
        ["-o", *opts, f"weights={reference}", *images, "--output_dir", str(tmp_path / "b")],
        ppdet_home,
    )
    assert direct.returncode == 0, direct.stderr
    assert (tmp_path / "a" / "bbox.json").read_text() == (tmp_path / "b" / "bbox.json").read_text()
