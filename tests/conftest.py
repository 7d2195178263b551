"""Shared fixtures: a tiny generated demo dataset and a tiny YOLOv3 config over it."""

import os
import sys
import warnings

import pytest

warnings.filterwarnings("ignore", message="No ccache found")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(ROOT, "configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")


@pytest.fixture(scope="session")
def tiny_demo_data(tmp_path_factory):
    """A generated demo set: 8 train, 4 val and 2 sample images (COCO + VOC layouts)."""
    sys.path.insert(0, os.path.join(ROOT, "dataset"))
    try:
        from generate_demo import generate
    finally:
        sys.path.pop(0)
    out = str(tmp_path_factory.mktemp("demo") / "demo")
    generate(out, n_train=8, n_val=4, n_samples=2, seed=1)
    return out


def tiny_overrides(data_dir: str, out_dir: str) -> list[str]:
    """-o overrides turning the demo config into a seconds-long run on the tiny set."""
    coco = os.path.join(data_dir, "coco")
    return [
        f"TrainDataset.dataset_dir={coco}",
        f"EvalDataset.dataset_dir={coco}",
        f"TestDataset.anno_path={coco}/annotations/instances_val.json",
        f"save_dir={out_dir}",
        "MobileNet.scale=0.25",
        "YOLOv3FPN.base_channels=32",
        "YOLOv3Head.obj_prior=0.0",  # untrained: keep scores above the 0.005 threshold
        "epoch=2",
        "snapshot_epoch=1",
        "log_iter=1",
        "LearningRate.schedulers.0.max_epochs=2",
        "LearningRate.schedulers.1.steps=2",
        "TrainReader.batch_size=4",
        "reference_batch_size=null",  # tests pick their batches: LR and iterations as written
        "TrainReader.batch_transforms.BatchRandomResize.target_size=[64, 96]",
        "EvalReader.sample_transforms.Resize.target_size=[64, 64]",
        "TestReader.sample_transforms.Resize.target_size=[64, 64]",
    ]
