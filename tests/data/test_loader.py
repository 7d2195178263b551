"""build_dataset / build_loader end to end on a tiny generated COCO set."""

from __future__ import annotations

import logging
import os

import numpy as np
import paddle
import pytest

from ppdet.config.errors import ConfigError
from ppdet.data import DataPipelineError, build_dataset, build_loader, set_loader_epoch
from ppdet.data.datasets import COCODataSet, ImageFolder
from ppdet.data.sampler import TrainBatchSampler

from .conftest import coco_cfg
from .image_kinds import png_bomb

GT_KEYS = ("gt_bbox", "gt_class", "gt_score", "pad_gt_mask", "is_crowd", "difficult")
DTYPES = {
    "image": paddle.float32,
    "im_shape": paddle.float32,
    "scale_factor": paddle.float32,
    "im_id": paddle.int64,
    "gt_bbox": paddle.float32,
    "gt_class": paddle.int32,
    "gt_score": paddle.float32,
    "pad_gt_mask": paddle.float32,
    "is_crowd": paddle.int32,
    "difficult": paddle.int32,
}


def check_batch(batch: dict, b: int, hw: tuple[int, int], with_gt: bool = True) -> None:
    expected = set(DTYPES) if with_gt else {"image", "im_shape", "scale_factor", "im_id"}
    assert set(batch) == expected
    for key, value in batch.items():
        assert isinstance(value, paddle.Tensor) and value.dtype == DTYPES[key], key
    assert batch["image"].shape == [b, 3, *hw]
    assert batch["im_shape"].shape == [b, 2] and batch["scale_factor"].shape == [b, 2]
    assert batch["im_id"].shape == [b, 1]
    if with_gt:
        m = batch["gt_bbox"].shape[1]
        assert batch["gt_bbox"].shape == [b, m, 4] and m >= 1
        for key in GT_KEYS[1:]:
            assert batch[key].shape == [b, m, 1], key


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_gives_contract_batches(tiny_coco, num_workers):
    cfg = coco_cfg(tiny_coco, num_workers=num_workers, drop_last=True)
    dataset = build_dataset(cfg, "train")
    loader = build_loader(cfg, "train", dataset)
    batches = list(loader)
    assert len(batches) == 3
    ids = []
    for batch in batches:
        check_batch(batch, 2, (64, 64))
        ids += batch["im_id"].numpy()[:, 0].tolist()
        mask = batch["pad_gt_mask"].numpy()
        boxes = batch["gt_bbox"].numpy()
        assert np.all(boxes[mask[..., 0] == 0] == 0)
        assert np.all(boxes[mask[..., 0] == 1][:, 2:] <= 64)
        assert batch["is_crowd"].numpy().sum() == 0  # crowd dropped in train mode
    assert sorted(ids) == [1, 2, 3, 4, 5, 6]


def test_eval_loader_keeps_order_crowd_and_scale(tiny_coco):
    cfg = coco_cfg(tiny_coco)
    dataset = build_dataset(cfg, "eval")
    batches = list(build_loader(cfg, "eval", dataset))
    assert [b["im_id"].numpy()[:, 0].tolist() for b in batches] == [[1, 2], [3, 4], [5, 6]]
    second = batches[1]
    assert second["is_crowd"].numpy()[0, :, 0].tolist() == [0, 1]
    np.testing.assert_allclose(second["scale_factor"].numpy()[0], [1.0, 1.0])  # 64x64 -> 64x64
    np.testing.assert_allclose(batches[0]["scale_factor"].numpy()[0], [64 / 60, 64 / 80])
    np.testing.assert_allclose(
        batches[0]["gt_bbox"].numpy()[0, :2],
        [[8, 64 / 6, 24, 32], [32, 64 / 3, 56, 160 / 3]],
        rtol=1e-5,
    )


def test_mixup_follows_mixup_epoch(tiny_coco):
    resize = {"Resize": {"target_size": 48, "keep_ratio": False}}
    transforms = [{"Decode": {}}, {"Mixup": {"alpha": 1.5, "beta": 1.5}}, resize, {"Permute": {}}]
    cfg = coco_cfg(tiny_coco, sample_transforms=transforms, mixup_epoch=1, batch_size=6)
    loader = build_loader(cfg, "train", build_dataset(cfg, "train"))
    np.random.seed(0)
    set_loader_epoch(loader, 0)
    (batch,) = list(loader)
    real = batch["pad_gt_mask"].numpy() == 1
    scores = batch["gt_score"].numpy()[real]
    assert np.all((scores > 0) & (scores < 1)) and batch["gt_bbox"].shape[1] > 3
    set_loader_epoch(loader, 1)
    (batch,) = list(loader)
    real = batch["pad_gt_mask"].numpy() == 1
    assert np.all(batch["gt_score"].numpy()[real] == 1)


def test_test_loader_over_image_folder(tiny_coco):
    cfg = coco_cfg(tiny_coco)
    cfg["TestDataset"] = {
        "name": "ImageFolder",
        "anno_path": os.path.join(tiny_coco, "annotations/train.json"),
    }
    cfg["TestReader"] = dict(cfg["EvalReader"], batch_size=1)
    dataset = build_dataset(cfg, "test")
    assert isinstance(dataset, ImageFolder)
    dataset.set_images([os.path.join(tiny_coco, "train", "b.jpg")])
    (batch,) = list(build_loader(cfg, "test", dataset))
    check_batch(batch, 1, (64, 64), with_gt=False)
    np.testing.assert_allclose(batch["scale_factor"].numpy(), [[64 / 72, 64 / 48]])


def test_train_run_survives_an_unreadable_image(tiny_coco, caplog):
    with open(os.path.join(tiny_coco, "train", "c.jpg"), "wb") as f:
        f.write(b"\xff\xd8garbage")
    cfg = coco_cfg(tiny_coco)
    loader = build_loader(cfg, "train", build_dataset(cfg, "train"))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert sum(1 for _ in loader) == 3
    assert [m for m in caplog.messages if "c.jpg" in m][0].startswith(
        os.path.join(tiny_coco, "train")
    )
    assert len([m for m in caplog.messages if "c.jpg" in m]) == 1


@pytest.mark.parametrize("num_workers", [0, 2])
def test_eval_skips_unreadable_images_and_keeps_the_rest(tiny_coco, num_workers, caplog):
    with open(os.path.join(tiny_coco, "train", "e.jpg"), "wb") as f:
        f.write(b"junk")
    with open(os.path.join(tiny_coco, "train", "a.jpg"), "wb") as f:
        f.write(png_bomb())  # a PNG named .jpg, declaring 30000 x 30000 pixels
    cfg = coco_cfg(tiny_coco, num_workers=num_workers, batch_size=4)
    dataset = build_dataset(cfg, "eval")
    loader = build_loader(cfg, "eval", dataset)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # warned once per file over both passes
            ids = [i for batch in loader for i in batch["im_id"].numpy().reshape(-1).tolist()]
            assert ids == [2, 3, 4, 6]  # COCO ids of b, c, d, f: a (1) and e (5) left out
            assert len(loader.skipped_in_pass) == 2
    bad = [m for m in caplog.messages if "a.jpg" in m or "e.jpg" in m]
    assert len([m for m in bad if m.endswith("; skipped")]) == 2, caplog.messages
    assert any("e.jpg: not a decodable image" in m for m in bad)
    assert any("a.jpg: 900 megapixels exceed the limit" in m for m in bad)
    summaries = [m for m in caplog.messages if m.startswith("eval: 2 of 6 images")]
    assert len(summaries) == 2 and "without detections" in summaries[0]
    assert set(loader.skipped) == {os.path.join(tiny_coco, "train", n) for n in ("a.jpg", "e.jpg")}


def test_a_batch_of_only_skipped_images_is_not_yielded(tiny_coco):
    for name in ("a.jpg", "b.jpg"):
        with open(os.path.join(tiny_coco, "train", name), "wb") as f:
            f.write(b"")
    cfg = coco_cfg(tiny_coco)  # batch_size 2: the first batch is a.jpg + b.jpg
    batches = list(build_loader(cfg, "eval", build_dataset(cfg, "eval")))
    assert [b["im_id"].numpy().reshape(-1).tolist() for b in batches] == [[3, 4], [5, 6]]


def test_train_gives_up_only_when_no_image_is_readable(tiny_coco):
    for name in "abcdef":
        with open(os.path.join(tiny_coco, "train", f"{name}.jpg"), "wb") as f:
            f.write(b"junk")
    cfg = coco_cfg(tiny_coco)
    loader = build_loader(cfg, "train", build_dataset(cfg, "train"))
    with pytest.raises(DataPipelineError, match="too many unreadable images in a row") as err:
        list(loader)
    assert "\n" not in str(err.value)  # a DataError: one line, no traceback


def test_set_loader_epoch_reaches_sampler_and_dataset(tiny_coco):
    cfg = coco_cfg(tiny_coco)
    loader = build_loader(cfg, "train", build_dataset(cfg, "train"), accumulate_steps=3)
    assert isinstance(loader.batch_sampler, TrainBatchSampler)
    assert loader.batch_sampler.global_batch_size == 6  # batch 2 x 3 micro-batches
    set_loader_epoch(loader, 3, start=1)
    assert loader.batch_sampler.epoch == 3 and loader.dataset._epoch == 3
    assert loader.batch_sampler.start == 1


def test_variable_sizes_need_padding(tiny_coco):
    transforms = [
        {"Decode": {}},
        {"Resize": {"target_size": [48, 64], "keep_ratio": True}},
        {"Permute": {}},
    ]
    cfg = coco_cfg(tiny_coco, sample_transforms=transforms)
    with pytest.raises(DataPipelineError, match="differ in size.*PadBatch") as err:
        list(build_loader(cfg, "eval", build_dataset(cfg, "eval")))
    assert "Traceback" in str(err.value)  # not a DataError: the traceback comes along
    cfg["EvalReader"] = dict(
        cfg["TrainReader"], batch_transforms=[{"PadBatch": {"pad_to_stride": 32}}]
    )
    for batch in build_loader(cfg, "eval", build_dataset(cfg, "eval")):
        assert batch["image"].shape[2] % 32 == 0 and batch["image"].shape[3] % 32 == 0


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"batch_sise": 2},
            "TrainReader.batch_sise: unknown reader key; did you mean 'batch_size'",
        ),
        ({"batch_size": 0}, "TrainReader.batch_size: expected int >= 1"),
        ({"sample_transforms": [{"Decod": {}}]}, "did you mean 'Decode'"),
        (
            {"sample_transforms": [{"Resize": {"target_size": 32, "keep": 1}}]},
            "unknown key for Resize",
        ),
        ({"sample_transforms": [{"Mixup": {}}, {"Decode": {}}]}, "Mixup must follow Decode"),
    ],
)
def test_reader_config_errors_are_one_line(tiny_coco, change, message):
    cfg = coco_cfg(tiny_coco)
    cfg["TrainReader"].update(change)
    with pytest.raises(ConfigError, match=message) as err:
        build_loader(
            cfg,
            "train",
            COCODataSet(**{k: v for k, v in cfg["TrainDataset"].items() if k != "name"}),
        )
    assert "\n" not in str(err.value)


def test_missing_dataset_section_is_a_config_error(tiny_coco):
    with pytest.raises(ConfigError, match="TestDataset: missing"):
        build_dataset(coco_cfg(tiny_coco), "test")
