"""The v0.1 seed-zoo configs at their v0.1 paths (configs/<name>.yml): each builds, has exactly
the parameters its converted seed tarball provides and names its zoo entry; tools/train.py
trains configs/faster_rcnn_r50_fpn_1x.yml (v0.1's reader) and its 2.6 sibling (2.6's reader).

Their values are compared with v0.1's own configs in test_upstream_values.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import paddle
import pytest

import ppdet
from ppdet.zoo.index import load_index
from ppdet.zoo.legacy import map_shapes
from ppdet.zoo.legacy_models import LEGACY_MODELS

from .test_upstream_values import CONFIGS, ROOT, counterparts_01

FIXTURES = Path(ROOT) / "tests" / "fixtures"


def read_list(path: Path) -> dict[str, tuple[int, ...]]:
    """{name: shape} from a ``name<TAB>[shape][<TAB>dtype]`` list."""
    out = {}
    for line in path.read_text().splitlines():
        name, shape = line.split("\t")[:2]
        out[name] = tuple(int(v) for v in shape.strip("[]").split(",") if v.strip())
    return out


def converted_list(name: str) -> dict[str, tuple[int, ...]]:
    """The parameters the converter makes of seed tarball ``name``: the genuine v0.1 list
    converted (tests/fixtures/legacy_v01/<name>.txt) where we have it, else the 2.x list the
    converter targets with the layer v0.1 builds differently (RetinaNet's P6 conv on C5)."""
    legacy = FIXTURES / "legacy_v01" / f"{name}.txt"
    if legacy.is_file():
        return map_shapes(read_list(legacy), name)
    model = LEGACY_MODELS[name]
    expected = read_list(FIXTURES / "compat" / f"{model.target}.txt")
    if model.behaviour.get("fpn_use_c5"):  # v0.1 RetinaNet: P6 by a conv on C5 (2048 channels)
        expected["neck.fpn_6.weight"] = (256, 2048, 3, 3)
    return expected


@pytest.mark.parametrize("rel", counterparts_01())
def test_v01_config_builds_with_the_parameters_of_its_seed_tarball(rel):
    name = os.path.basename(rel)[: -len(".yml")]
    cfg = ppdet.load_config(os.path.join(CONFIGS, rel))
    assert cfg["weights"] == name  # the row's zoo entry
    with paddle.LazyGuard():
        model = ppdet.build_model(cfg)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == converted_list(name), rel


def test_v01_configs_name_legacy_zoo_entries():
    index = load_index()
    for rel in counterparts_01():
        name = os.path.basename(rel)[: -len(".yml")]
        entry = index.require(name)
        assert entry.format == "legacy_v01" and entry.legacy in LEGACY_MODELS, name
        cfg = ppdet.load_config(os.path.join(CONFIGS, rel))
        assert cfg["num_classes"] == LEGACY_MODELS[entry.legacy].num_classes, name


@pytest.mark.parametrize(
    "config, resize",
    [
        # v0.1's reader: normalise, then resize the float image; iteration schedule
        ("faster_rcnn_r50_fpn_1x.yml", "TrainReader.sample_transforms.Resize.target_size=[64, 96]"),
        # 2.6's reader: per-sample RandomResize; epoch schedule (run for max_iters here)
        (
            "faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yml",
            "TrainReader.sample_transforms.RandomResize.target_size=[[64, 96], [80, 96]]",
        ),
    ],
)
def test_tools_train_runs_the_config_a_few_iterations(tiny_demo_data, tmp_path, config, resize):
    """tools/train.py -c <config> on the demo set, shrunk to seconds (ResNet-18, narrow FPN)."""
    coco = os.path.join(tiny_demo_data, "coco")
    opts = [
        f"TrainDataset.dataset_dir={coco}",
        "TrainDataset.image_dir=train",
        "TrainDataset.anno_path=annotations/instances_train.json",
        f"EvalDataset.dataset_dir={coco}",
        "EvalDataset.image_dir=val",
        "EvalDataset.anno_path=annotations/instances_val.json",
        f"TestDataset.anno_path={coco}/annotations/instances_val.json",
        "num_classes=4",
        f"save_dir={tmp_path / 'out'}",
        "pretrain_weights=",
        "max_iters=3",
        "snapshot_iter=3",
        "log_iter=1",
        "ResNet.depth=18",
        "FPN.out_channel=16",
        "TwoFCHead.out_channel=32",
        "TrainReader.batch_size=2",
        "reference_batch_size=2",  # this run's total batch: iterations as written
        "TrainReader.num_workers=0",
        resize,
        "LearningRate.schedulers.1.steps=1",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "train.py"),
            "-c",
            f"configs/{config}",
            "-o",
            *opts,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "loss_rpn_cls" in proc.stdout and "loss_bbox_reg" in proc.stdout
    assert "schedule: total batch 2 (1 process(es) x 2 image(s)) = the config's" in proc.stdout
    assert "training done: 3 iterations" in proc.stdout
    run = tmp_path / "out" / os.path.basename(config)[: -len(".yml")]
    assert (run / "iter_3.pdopt").is_file() and (run / "model_final.pdparams").is_file()
