"""The package as a user installs it: a wheel and an sdist built from the source tree carry every
data file the package reads, and the installed wheel works from outside the source tree."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

from tests.conftest import ROOT

ENV = dict(os.environ, PYTHONWARNINGS="ignore")
ENV.pop("PYTHONPATH", None)


def source_files(root: str) -> list[str]:
    """Repo-relative paths of the files a fresh clone has (git's list; a walk without git)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=60
        ).stdout
        return [p for p in out.decode().split("\0") if p and os.path.isfile(os.path.join(root, p))]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "output", "build", "__pycache__", ".pytest_cache"}
        found = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in skip and not x.endswith(".egg-info")]
            found += [os.path.relpath(os.path.join(d, f), root) for f in files]
        return found


BUILD = (
    "import sys; from setuptools import build_meta; print('BUILT', build_meta.{hook}(sys.argv[1]))"
)


def package_data_files(files: list[str]) -> set[str]:
    """Files under ppdet/ that are not Python code: the data the package reads at run time."""
    return {p for p in files if p.startswith("ppdet/") and not p.endswith((".py", ".pyc"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel path, sdist path, source files) built from a copy of the tracked source tree."""
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    files = source_files(ROOT)
    for rel in files:
        os.makedirs(src / os.path.dirname(rel), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), src / rel)
    dist = tmp / "dist"
    names = []
    for hook in ("build_wheel", "build_sdist"):  # one process each, as build frontends do
        proc = subprocess.run(
            [sys.executable, "-c", BUILD.format(hook=hook), str(dist)],
            cwd=src,
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        names.append([ln for ln in proc.stdout.splitlines() if ln.startswith("BUILT ")][-1][6:])
    wheel_name, sdist_name = names
    return str(dist / wheel_name), str(dist / sdist_name), files


def test_wheel_and_sdist_carry_the_package_data(built):
    wheel, sdist, files = built
    data = package_data_files(files)
    assert "ppdet/zoo/models.yml" in data
    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
    assert data <= in_wheel, f"missing from the wheel: {sorted(data - in_wheel)}"
    with tarfile.open(sdist) as t:
        in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    needed = data | {"pyproject.toml", "requirements.txt", "README.md"}
    assert needed <= in_sdist, f"missing from the sdist: {sorted(needed - in_sdist)}"
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Python: >=3.11" in meta
    assert "Requires-Dist: paddlepaddle==3.1.1" in meta


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """A fresh venv holding only the wheel's ppdet; the pinned dependencies (paddle, ...) are
    borrowed from this interpreter's site-packages through a .pth line, so nothing is
    downloaded. Returns (venv python, a work folder outside the source tree)."""
    wheel = built[0]
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site, "borrowed_dependencies.pth"), "w") as f:
        f.write(deps + "\n")  # appended after the venv's own site-packages: the wheel wins
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + ["--target", site, wheel],
        check=True,
        env=ENV,
        timeout=300,
    )
    work = tmp / "work"
    work.mkdir()
    return py, work


def run(py, args, cwd):
    proc = subprocess.run(
        [py, *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=300
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_installed_wheel_imports_from_site_packages(installed):
    py, work = installed
    where = run(py, ["-c", "import ppdet; print(ppdet.__file__)"], work).strip()
    assert "site-packages" in where and not where.startswith(ROOT)


def test_installed_wheel_lists_the_zoo(installed):
    py, work = installed
    out = run(py, ["-m", "ppdet.zoo", "list"], work)
    assert "yolov3_darknet53_270e_coco" in out and "faster_rcnn_r50_fpn_1x_coco" in out


def test_installed_wheel_infers_outside_the_source_tree(installed, tiny_demo_data):
    """tools/infer.py and configs/ copied to a folder without ppdet/: the wheel's ppdet runs."""
    py, work = installed
    shutil.copytree(os.path.join(ROOT, "configs"), work / "configs")
    shutil.copytree(os.path.join(ROOT, "tools"), work / "tools")
    cfg = "configs/yolov3/yolov3_mobilenet_v1_demo.yml"
    small = ["MobileNet.scale=0.25", "YOLOv3FPN.base_channels=32", "YOLOv3Head.obj_prior=0.0"]
    save = (
        "import sys, paddle, ppdet; paddle.seed(0); "
        "m = ppdet.build_model(ppdet.load_config(sys.argv[1], sys.argv[3:])); "
        "paddle.save(m.state_dict(), sys.argv[2] + '.pdparams')"
    )
    run(py, ["-c", save, cfg, str(work / "tiny"), *small], work)
    image = os.path.join(tiny_demo_data, "samples", "sample_00.jpg")
    out = run(
        py,
        ["tools/infer.py", "-c", cfg, "-o", *small, f"weights={work / 'tiny'}"]
        + ["--infer_img", image, "--output_dir", str(work / "out"), "--draw_threshold", "0"],
        work,
    )
    assert "1 images" in out
    assert (work / "out" / "bbox.json").is_file() and (work / "out" / "sample_00.jpg").is_file()
