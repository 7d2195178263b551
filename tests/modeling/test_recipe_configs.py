"""Every config of seeds 000 and 001 (the README's recipe table) builds, reads the tiny demo
set through its own train pipeline and trains a few steps with a falling loss, shrunk to tiny
sizes (ResNet-18, 32 channels, one tower conv, 64-96 px images) so each takes seconds."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppdet
from ppdet.data.loader import build_dataset, build_loader
from tests.modeling.detector_checks import assert_loss_drops, train_steps

REPO = Path(__file__).resolve().parents[2]
SEED_000 = [
    "retinanet/retinanet_r50_fpn_640_3x_coco.yml",
    "retinanet/retinanet_r50_fpn_640_30x_scratch_coco.yml",
]
SEED_001 = [
    "retinanet/retinanet_r50_fpn-gn_head-bn_120k_coco.yml",
    "retinanet/retinanet_r50_fpn-bn_head-bn_bs2_120k_coco.yml",
    "retinanet/retinanet_r50_fpn-gn_head-gn_120k_coco.yml",
    "retinanet/retinanet_r50_fpn-evonorm_head-evonorm_120k_coco.yml",
    "retinanet/retinanet_r50_fpn-evonorm_head-evonorm_bs2_120k_coco.yml",
    "retinanet/retinanet_r50_fpn_evonorm_giou_120k_coco.yml",
    "retinanet/retinanet_r50_fpn_evonorm_giou_cosine_120k_coco.yml",
    "retinanet/retinanet_r50_fpn_evonorm_giou_autoaug_120k_coco.yml",
    "retinanet/retinanet_r50_fpn_evonorm_giou_stitcher_120k_coco.yml",
    "retinanet/retinanet_r50_fpn_evonorm_giou_stitcher_eval640_120k_coco.yml",
    "retinanet/retinanet_r50_twowayfpn_evonorm_giou_120k_coco.yml",
    "retinanet/retinanet_r50_pconv_evonorm_giou_120k_coco.yml",
    "retinanet/retinanet_mobilenetv3_fpn_evonorm_giou_120k_coco.yml",
    "retinanet/retinanet_r50_fpn_sn_giou_120k_coco.yml",
    "retinanet/retinanet_r50_fpn-sn_head-sn_120k_coco.yml",
    "efficientdet/efficientdet_d0_coco.yml",
    "efficientdet/efficientdet_d0_evonorm_giou_120k_coco.yml",
    "efficientdet/efficientdet_r50_bifpn96_evonorm_giou_120k_coco.yml",
]
WIDTH = 32  # neck / head channels of the tiny models (GN and EvoNorm-S0 need 32 groups' worth)

# the part of each config section that makes the model tiny, applied when the section is used
SHRINK = {
    "ResNet": ["ResNet.depth=18"],
    "MobileNetV3": ["MobileNetV3.scale=0.5"],
    "FPN": [f"FPN.out_channel={WIDTH}"],
    "TwoWayFPN": [f"TwoWayFPN.out_channel={WIDTH}"],
    "PConvFPN": [f"PConvFPN.out_channel={WIDTH}"],
    "BiFPN": [f"BiFPN.out_channel={WIDTH}", "BiFPN.num_stacks=1"],
    "RetinaHead": [
        f"RetinaHead.conv_feat.feat_out={WIDTH}",
        "RetinaHead.conv_feat.num_convs=1",
    ],
    "EfficientDetHead": [
        f"EfficientDetHead.conv_feat.feat_out={WIDTH}",
        "EfficientDetHead.conv_feat.repeat=1",
    ],
}


def test_the_lists_cover_every_recipe_config():
    """A new recipe config must join the table (and this test)."""
    found = {
        f"{folder}/{p.name}"
        for folder in ("retinanet", "efficientdet")
        for p in (REPO / "configs" / folder).glob("*.yml")
    }
    older = {  # PaddleDetection 2.x ports and the demo config, tested elsewhere
        "retinanet/retinanet_r50_fpn_1x_coco.yml",
        "retinanet/retinanet_r101_fpn_2x_coco.yml",
        "retinanet/retinanet_r18_fpn_demo.yml",
        "retinanet/retinanet_mobilenet_v1_fpn_demo.yml",  # bench/norm_study.py's model
    }
    assert found - older == set(SEED_000 + SEED_001)
    readme = (REPO / "README.md").read_text()
    assert all(f"configs/{rel}" in readme for rel in SEED_000 + SEED_001)


def tiny_options(path: str, data_dir: str) -> list[str]:
    """-o overrides: the demo set, 4 classes, no pretrained download, tiny widths and images."""
    cfg = ppdet.load_config(path)
    coco = os.path.join(data_dir, "coco")
    opts = [
        f"TrainDataset.dataset_dir={coco}",
        f"EvalDataset.dataset_dir={coco}",
        "TrainDataset.image_dir=train",
        "TrainDataset.anno_path=annotations/instances_train.json",
        "EvalDataset.image_dir=val",
        "EvalDataset.anno_path=annotations/instances_val.json",
        "num_classes=4",
        "pretrain_weights=null",
        "TrainReader.batch_size=2",
        "TrainReader.num_workers=0",
    ]
    for section, shrink in SHRINK.items():
        if section in cfg:
            opts += shrink
    names = [next(iter(t)) for t in cfg["TrainReader"]["sample_transforms"]]
    if "RandomScaledCrop" in names:
        opts.append("TrainReader.sample_transforms.RandomScaledCrop.target_dim=64")
    if "RandomResize" in names:
        opts.append("TrainReader.sample_transforms.RandomResize.target_size=[[64, 96], [80, 96]]")
    return opts


def first_batch(cfg) -> dict:
    """The first training batch, the same whatever ran before (augmentation draws from
    np.random)."""
    np.random.seed(0)
    random.seed(0)
    dataset = build_dataset(cfg, "train")
    loader = build_loader(cfg, "train", dataset)
    return next(iter(loader))


@pytest.mark.parametrize("rel", SEED_000 + SEED_001)
def test_recipe_builds_and_trains(rel, tiny_demo_data):
    path = str(REPO / "configs" / rel)
    cfg = ppdet.load_config(path, tiny_options(path, tiny_demo_data))
    paddle.seed(0)
    model = ppdet.build_model(cfg)
    batch = first_batch(cfg)
    assert max(batch["image"].shape[2:]) <= 128  # the shrunk pipeline ran
    assert_loss_drops(train_steps(model, batch, steps=8, lr=2e-3)["loss"], factor=0.8)
