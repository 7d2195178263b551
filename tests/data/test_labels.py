"""Class names for inference: from the weights, their zoo entry, an annotation file, the
config's dataset kind, or placeholders, in that order; a list of the wrong length is passed over."""

from __future__ import annotations

import logging
import os

import pytest

from ppdet.data.labels import (
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    VOC_CLASSES,
    read_label_file,
    resolve_labels,
)
from ppdet.zoo.index import load_index


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def cfg_for(num_classes: int, metric: str = "COCO", anno: str | None = None) -> dict:
    cfg = {"num_classes": num_classes, "metric": metric}
    if anno is not None:
        cfg["TestDataset"] = {"name": "ImageFolder", "anno_path": anno}
    return cfg


def test_builtin_lists():
    assert len(COCO_CLASSES) == 80 == len(set(COCO_CLASSES)) == len(COCO_CATEGORY_IDS)
    assert COCO_CLASSES[0] == "person" and COCO_CLASSES[-1] == "toothbrush"
    assert COCO_CATEGORY_IDS[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
    assert COCO_CATEGORY_IDS[-1] == 90
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[14] == "person"


def test_label_list_with_the_weights_comes_first(tmp_path, tiny_coco):
    folder = tmp_path / "published"  # a published model folder / extracted tarball
    folder.mkdir()
    (folder / "model.pdparams").write_bytes(b"")
    (folder / "label_list.txt").write_text("a\nb\n\nc\n")
    anno = os.path.join(tiny_coco, "annotations", "train.json")
    for path in (str(folder), str(folder / "model.pdparams")):
        labels = resolve_labels(cfg_for(3, anno=anno), "dist/published", path)
        assert labels.names == ("a", "b", "c") and labels.source.endswith("label_list.txt")


def test_zoo_entries_name_their_dataset():
    index = load_index()
    labels = resolve_labels(cfg_for(20, "VOC"), "ssd_mobilenet_v1_300_120e_voc", "/cache/x")
    assert labels.names == VOC_CLASSES and "ssd_mobilenet_v1_300_120e_voc" in labels.source
    url = index.get("yolov3_mobilenet_v1_270e_coco").url
    labels = resolve_labels(cfg_for(80, "VOC"), url, "/cache/x.pdparams")
    assert labels.names == COCO_CLASSES  # the weights' dataset wins over the config's metric


def test_annotation_file_then_the_configs_dataset_kind(tiny_coco, tmp_path, caplog):
    anno = os.path.join(tiny_coco, "annotations", "train.json")
    labels = resolve_labels(cfg_for(3, anno=anno), "out/model_final", "out/model_final.pdparams")
    assert labels.names == ("circle", "square", "triangle") and labels.source == anno
    (tmp_path / "labels.txt").write_text("x\ny\n")
    assert read_label_file(str(tmp_path / "labels.txt")) == ["x", "y"]
    # a custom 20-class VOC-style set keeps its own names
    names = [f"thing{i}" for i in range(20)]
    (tmp_path / "voc_labels.txt").write_text("\n".join(names))
    labels = resolve_labels(cfg_for(20, "VOC", str(tmp_path / "voc_labels.txt")))
    assert labels.names == tuple(names)
    # no annotation file on this machine: the config says COCO with 80 classes
    missing = str(tmp_path / "dataset/coco/annotations/instances_val2017.json")
    with caplog.at_level(logging.WARNING):
        labels = resolve_labels(cfg_for(80, anno=missing), "w.pdparams", "w.pdparams")
    assert labels.names == COCO_CLASSES and "built-in COCO" in labels.source
    assert resolve_labels(cfg_for(20, "VOC")).names == VOC_CLASSES
    assert not warnings_of(caplog)


def test_wrong_length_is_passed_over_and_placeholders_come_last(tiny_coco, tmp_path, caplog):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "label_list.txt").write_text("only\ntwo\n")
    anno = os.path.join(tiny_coco, "annotations", "train.json")  # 3 categories
    with caplog.at_level(logging.WARNING):
        labels = resolve_labels(cfg_for(4, anno=anno), str(folder), str(folder))
    assert labels.names == ("class_0", "class_1", "class_2", "class_3")
    lines = warnings_of(caplog)
    assert len(lines) == 3
    assert "label_list.txt has 2 names but the model has num_classes 4" in lines[0]
    assert "train.json has 3 names" in lines[1]
    assert "class_0 .. class_3" in lines[2]


@pytest.mark.parametrize("content", ["not json", '{"images": []}'])
def test_an_unusable_annotation_file_is_a_warning_not_an_error(tmp_path, caplog, content):
    anno = tmp_path / "bad.json"
    anno.write_text(content)
    with caplog.at_level(logging.WARNING):
        labels = resolve_labels(cfg_for(80, anno=str(anno)))
    assert labels.names == COCO_CLASSES
    assert any("cannot use" in m and "bad.json" in m for m in warnings_of(caplog))
