"""PaddleDetection 2.x configs load: keys ppdet has no use for are noted once and ignored,
keys it honours work, unknown keys stay errors; LR/optimizer sections are checked at load."""

from __future__ import annotations

import logging
import os
import textwrap

import pytest

import ppdet
from ppdet.config import ConfigError, compat
from ppdet.data import build_dataset, build_loader
from tests.conftest import ROOT
from tests.data.conftest import coco_cfg

COCO_CONFIG = os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_270e_coco.yml")

# What PaddleDetection 2.6's runtime.yml and dataset/reader sections add (values as upstream).
UPSTREAM_STYLE = """
_BASE_: [{base}]
use_gpu: true
use_xpu: false
use_mlu: false
use_npu: false
log_iter: 20
save_dir: output
snapshot_epoch: 1
print_flops: false
print_params: false
find_unused_parameters: true
worker_num: 0
export:
  post_process: True
  nms: True
  benchmark: False
  fuse_conv_bn: False
TrainDataset:
  name: COCODataSet
  image_dir: train
  anno_path: annotations/train.json
  dataset_dir: {data}
  data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']
EvalDataset:
  name: COCODataSet
  image_dir: train
  anno_path: annotations/train.json
  dataset_dir: {data}
TrainReader:
  inputs_def:
    num_max_boxes: 50
  collate_batch: false
  batch_size: 2
"""


def write(tmp_path, text: str, name: str = "upstream.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(autouse=True)
def fresh_notes():
    compat.forget_notes()
    yield
    compat.forget_notes()


def notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("note: ")]


def test_paddledetection_style_sections_load_with_one_note_per_ignored_key(
    tiny_coco, tmp_path, caplog
):
    path = write(tmp_path, UPSTREAM_STYLE.format(base=COCO_CONFIG, data=tiny_coco))
    with caplog.at_level(logging.INFO, logger="ppdet"):
        cfg = ppdet.load_config(path, ["TrainReader.batch_transforms=[]"])
        ppdet.load_config(path)  # a second load notes nothing new
        dataset = build_dataset(cfg, "train")
        loader = build_loader(cfg, "train", dataset)
    lines = notes(caplog)
    noted = sorted(line.split(": ")[2].split(".")[-1] for line in lines)
    # use_xpu: false etc. ask for what ppdet does anyway: no note
    assert noted == ["collate_batch", "data_fields", "export", "find_unused_parameters",
                     "inputs_def"]  # fmt: skip
    data_fields = next(line for line in lines if "data_fields" in line)
    assert data_fields.startswith(f"note: {path}: TrainDataset.data_fields: ")
    assert "ignored" in data_fields
    assert len(dataset) == 5 and dataset.label_list == ["circle", "square", "triangle"]
    assert loader.batch_sampler.batch_size == 2
    assert cfg["log_iter"] == 20 and cfg["snapshot_epoch"] == 1


def test_worker_num_is_the_default_num_workers(tiny_coco):
    from ppdet.config.readers import reader_spec

    cfg = coco_cfg(tiny_coco)
    assert reader_spec(cfg, "TrainReader").num_workers == 0
    cfg["worker_num"] = 2
    assert reader_spec(cfg, "TrainReader").num_workers == 2
    assert reader_spec(cfg, "TestReader").num_workers == 2  # also for a reader not written
    cfg["TrainReader"]["num_workers"] = 1
    assert reader_spec(cfg, "TrainReader").num_workers == 1
    assert build_loader(cfg, "eval", build_dataset(cfg, "eval")).num_workers == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("use_tpu=true", "use_tpu: unknown top-level key"),
        ("TrainDataset.data_feilds=[image]", "TrainDataset.data_feilds: unknown key for COCODataSet"),
        ("TrainReader.inputs_dfe={}", "TrainReader.inputs_dfe: unknown reader key; did you mean 'inputs_def'"),
        ("norm_type=3", "norm_type: expected str, got 3"),
        ("worker_num=two", "worker_num: expected int, got 'two'"),
    ],
)  # fmt: skip
def test_unknown_keys_stay_errors(tiny_coco, tmp_path, override, message):
    path = write(tmp_path, UPSTREAM_STYLE.format(base=COCO_CONFIG, data=tiny_coco))
    with pytest.raises(ConfigError, match=message) as err:
        ppdet.load_config(path, [override])
    assert "\n" not in str(err.value)


def test_shared_defaults_are_top_level_keys(tmp_path):
    path = write(tmp_path, f"_BASE_: [{COCO_CONFIG}]\nnorm_type: bn\n")
    assert ppdet.load_config(path)["norm_type"] == "bn"  # ResNet etc. take it (__shared__)


@pytest.mark.parametrize(
    "override, message",
    [
        ("LearningRate.schedulers.0.gama=0.1", r"LearningRate.schedulers\[0\].gama: unknown key"),
        ("LearningRate.base_lr=-1", "LearningRate.base_lr: must be >= 0"),
        ("OptimizerBuilder.optimizer.type=Momentun", "OptimizerBuilder.optimizer.type: unknown optimizer 'Momentun'"),
        ("OptimizerBuilder.regularizer.factor=big", "OptimizerBuilder.regularizer.factor: expected"),
    ],
)  # fmt: skip
def test_lr_and_optimizer_sections_are_checked_at_load_time(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        ppdet.load_config(COCO_CONFIG, [override])
    text = str(err.value)
    assert text.startswith(("-o: ", os.path.join(ROOT, "configs"))) and "\n" not in text
