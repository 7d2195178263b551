"""Dataset download scripts (dataset/coco/download_coco.py, dataset/voc/download_voc.py) against
the local HTTP server, with tiny archives in the real layouts; and the shared machinery in
ppdet/zoo/datasets.py (mirrors, checksums, resume, safe extraction, markers)."""

import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
import yaml

from ppdet.data.datasets.coco import COCODataSet
from ppdet.data.datasets.voc import VOC_CLASSES, VOCDataSet
from ppdet.zoo import download as dl
from ppdet.zoo.archive import ArchiveError
from ppdet.zoo.datasets import DatasetArchive, fetch_archive
from ppdet.zoo.download import DownloadError
from tests.conftest import ROOT
from tests.zoo.http_server import Drop, Serve, Status


def load_script(rel):
    spec = importlib.util.spec_from_file_location(
        os.path.basename(rel)[:-3], os.path.join(ROOT, rel)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coco_script = load_script("dataset/coco/download_coco.py")
voc_script = load_script("dataset/voc/download_voc.py")
_REAL_DOWNLOAD = dl.download


@pytest.fixture(autouse=True)
def fast_downloads(monkeypatch):
    """No retries and no pauses: each test scripts the failures it wants."""

    def download(url, *args, **kw):
        return _REAL_DOWNLOAD(url, *args, **{**kw, "retries": 0, "backoff": 0.0})

    monkeypatch.setattr(dl, "download", download)


def jpg(h=24, w=32, value=120):
    ok, data = cv2.imencode(".jpg", np.full((h, w, 3), value, np.uint8))
    assert ok
    return data.tobytes()


def make_zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def serve(http_server, item, data, path):
    """``item`` pointed at the local server (``path``) with the tiny archive's md5 and size."""
    url = http_server.route(path, Serve(data))
    return dataclasses.replace(item, urls=(url,), md5=hashlib.md5(data).hexdigest(), size=len(data))


def coco_json(image_id, name):
    return json.dumps(
        {
            "images": [{"id": image_id, "file_name": name, "width": 32, "height": 24}],
            "annotations": [
                {
                    "id": 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [2, 3, 10, 8],
                    "area": 80,
                    "iscrowd": 0,
                }
            ],  # fmt: skip
            "categories": [{"id": 1, "name": "person"}],
        }
    ).encode()


COCO_FILES = {
    "train": ("/zips/train2017.zip", {"train2017/000000000009.jpg": jpg()}),
    "val": ("/zips/val2017.zip", {"val2017/000000000139.jpg": jpg(value=60)}),
    "annotations": (
        "/annotations/annotations_trainval2017.zip",
        {
            "annotations/instances_train2017.json": coco_json(9, "000000000009.jpg"),
            "annotations/instances_val2017.json": coco_json(139, "000000000139.jpg"),
        },
    ),
}


def coco_sources(http_server):
    return {
        part: serve(http_server, coco_script.SOURCES[part], make_zip(members), path)
        for part, (path, members) in COCO_FILES.items()
    }


def test_coco_script_builds_the_layout_the_config_reads(http_server, tmp_path, ppdet_home, capsys):
    out = str(tmp_path / "coco")
    assert coco_script.main(["--out", out, "--quiet"], sources=coco_sources(http_server)) == 0
    assert f"is in {out}" in capsys.readouterr().out
    with open(os.path.join(ROOT, "configs", "datasets", "coco_detection.yml")) as f:
        cfg = yaml.safe_load(f)
    for section, n_images in (("TrainDataset", 1), ("EvalDataset", 1)):
        args = {k: v for k, v in cfg[section].items() if k != "name"}
        dataset = COCODataSet(**{**args, "dataset_dir": out})
        assert len(dataset.records) == n_images and dataset.label_list == ["person"]
        assert os.path.isfile(dataset.records[0]["im_file"])
    # the archives were deleted from the cache; a second run asks the server for nothing
    assert not any(n.endswith(".zip") for _, _, files in os.walk(ppdet_home) for n in files)
    before = http_server.count()
    assert coco_script.main(["--out", out, "--quiet"], sources=coco_sources(http_server)) == 0
    assert http_server.count() == before
    assert sorted(os.listdir(out)) == [".ppdet_download", "annotations", "train2017", "val2017"]


def test_coco_parts_and_a_wrong_checksum(http_server, tmp_path, capsys):
    sources = coco_sources(http_server)
    sources["train"] = dataclasses.replace(sources["train"], md5="0" * 32)
    out = str(tmp_path / "coco")
    assert (
        coco_script.main(
            ["--out", out, "--quiet", "--parts", "val", "annotations"], sources=sources
        )
        == 0
    )
    assert not os.path.exists(os.path.join(out, "train2017"))
    assert coco_script.main(["--out", out, "--quiet"], sources=sources) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "checksum mismatch" in err and "\n" not in err
    assert "train2017.zip" in err and not os.path.exists(os.path.join(out, "train2017"))


def voc_xml(name, w=32, h=24, cls="dog"):
    return (
        f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>"
        f"<depth>3</depth></size><object><name>{cls}</name><difficult>0</difficult><bndbox>"
        "<xmin>2</xmin><ymin>3</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object></annotation>"
    ).encode()


def voc_tar(year, ids, image_set, cls):
    base = f"VOCdevkit/VOC{year}"
    members = {f"{base}/ImageSets/Main/{image_set}.txt": "".join(f"{i}\n" for i in ids).encode()}
    for i in ids:
        members[f"{base}/Annotations/{i}.xml"] = voc_xml(i, cls=cls)
        members[f"{base}/JPEGImages/{i}.jpg"] = jpg()
    if image_set == "trainval":  # the real archives also carry train/val splits
        members[f"{base}/ImageSets/Main/train.txt"] = f"{ids[0]}\n".encode()
    return make_tar(members)


def voc_sources(http_server):
    tars = [
        voc_tar("2007", ["000005", "000007"], "trainval", "dog"),
        voc_tar("2007", ["000001"], "test", "cat"),
        voc_tar("2012", ["2008_000002"], "trainval", "person"),
    ]
    return tuple(
        serve(http_server, item, data, f"/pascal/{item.name}")
        for item, data in zip(voc_script.SOURCES, tars)
    )


def test_voc_script_writes_lists_and_labels_that_vocdataset_reads(http_server, tmp_path, capsys):
    out = str(tmp_path / "voc")
    assert voc_script.main(["--out", out, "--quiet"], sources=voc_sources(http_server)) == 0
    assert "trainval.txt 3 images, test.txt 1 images" in capsys.readouterr().out
    with open(os.path.join(out, "trainval.txt")) as f:
        assert f.read().splitlines() == [
            "VOCdevkit/VOC2007/JPEGImages/000005.jpg VOCdevkit/VOC2007/Annotations/000005.xml",
            "VOCdevkit/VOC2007/JPEGImages/000007.jpg VOCdevkit/VOC2007/Annotations/000007.xml",
            "VOCdevkit/VOC2012/JPEGImages/2008_000002.jpg VOCdevkit/VOC2012/Annotations/2008_000002.xml",
        ]
    with open(os.path.join(out, "label_list.txt")) as f:
        assert tuple(f.read().split()) == VOC_CLASSES
    # 2007 trainval and test both filled VOCdevkit/VOC2007
    assert sorted(os.listdir(os.path.join(out, "VOCdevkit", "VOC2007", "JPEGImages"))) == [
        "000001.jpg", "000005.jpg", "000007.jpg",
    ]  # fmt: skip
    with open(os.path.join(ROOT, "configs", "datasets", "voc.yml")) as f:
        cfg = yaml.safe_load(f)
    found = {}
    for section in ("TrainDataset", "EvalDataset"):
        args = {k: v for k, v in cfg[section].items() if k != "name"}
        dataset = VOCDataSet(**{**args, "dataset_dir": out})
        found[section] = sorted(VOC_CLASSES[int(r["gt_class"][0, 0])] for r in dataset.records)
    assert found == {"TrainDataset": ["dog", "dog", "person"], "EvalDataset": ["cat"]}


def test_voc_mirror_fallback_and_resume_after_an_interruption(http_server, tmp_path):
    sources = list(voc_sources(http_server))
    data = voc_tar("2012", ["2008_000002"], "trainval", "person")
    dead = http_server.route("/dead/VOCtrainval_11-May-2012.tar", Status(404))
    url = http_server.route("/m/VOCtrainval_11-May-2012.tar", Drop(data, after=4000), Serve(data))
    sources[2] = dataclasses.replace(sources[2], urls=(dead, url))
    out = str(tmp_path / "voc")
    with pytest.raises(DownloadError, match="partial file"):  # the part is kept for next time
        voc_script.download_voc(out, sources=tuple(sources), progress=False)
    assert os.path.isfile(os.path.join(out, ".ppdet_download", "VOCtest_06-Nov-2007.tar.done"))
    assert voc_script.main(["--out", out, "--quiet"], sources=tuple(sources)) == 0
    resumed = http_server.requests_for("/m/VOCtrainval_11-May-2012.tar")[-1]
    assert resumed.headers["range"] == "bytes=4000-"
    assert http_server.count("/dead/VOCtrainval_11-May-2012.tar") == 2  # tried first each time


def test_a_hostile_archive_is_refused_and_nothing_lands_outside(http_server, tmp_path):
    evil = make_zip({"val2017/ok.jpg": jpg(), "../escape.txt": b"x"})
    item = serve(
        http_server, DatasetArchive("val2017.zip", ("",), provides=("val2017",)), evil, "/v.zip"
    )
    out = tmp_path / "coco"
    with pytest.raises(ArchiveError, match="climbs out"):
        fetch_archive(item, str(out), progress=False)
    assert not (tmp_path / "escape.txt").exists() and not (out / "val2017").exists()


def test_an_archive_without_what_it_should_provide_is_not_marked_done(http_server, tmp_path):
    item = DatasetArchive("val2017.zip", ("",), provides=("val2017",))
    item = serve(http_server, item, make_zip({"other/x.jpg": jpg()}), "/v.zip")
    with pytest.raises(ArchiveError, match="val2017 is missing"):
        fetch_archive(item, str(tmp_path / "coco"), progress=False)
    assert not os.path.exists(tmp_path / "coco" / ".ppdet_download" / "val2017.zip.done")


def test_missing_annotations_name_the_download_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="python dataset/coco/download_coco.py"):
        COCODataSet(dataset_dir=str(tmp_path), image_dir="val2017", anno_path="annotations/x.json")
    with pytest.raises(FileNotFoundError, match="python dataset/voc/download_voc.py"):
        VOCDataSet(dataset_dir=str(tmp_path), anno_path="trainval.txt")


def test_the_scripts_use_the_official_urls_with_checksums():
    for item in list(coco_script.SOURCES.values()) + list(voc_script.SOURCES):
        assert item.urls[0].startswith(
            ("http://images.cocodataset.org/", "http://host.robots.ox.ac.uk/")
        )
        assert len(item.md5) == 32 and item.size > 100_000_000
