"""Every config carries PaddleDetection's values: key by key, class defaults included.

Each config under configs/ with a PaddleDetection 2.6 counterpart
(tests/fixtures/upstream_configs/2.6/<family>/<name>.yml, ``_BASE_`` merged) is flattened with
our classes' defaults and compared with the counterpart flattened with 2.6's defaults
(class_defaults_2.6.yml); see upstream_compare.py. Every difference must be listed, with its
reason, in tests/fixtures/upstream_configs/allowlist.yml; an entry that explains nothing fails
too (the list stays true).
"""

from __future__ import annotations

import glob
import inspect
import os

import paddle
import pytest
import yaml

import ppdet.data  # noqa: F401  (registers datasets and transforms)
import ppdet.modeling  # noqa: F401  (registers the model parts)
from ppdet.config import load_config
from ppdet.config.registry import is_registered, lookup
from ppdet.engine import optim
from ppdet.modeling.anchors import AnchorGenerator, AnchorGeneratorSSD, RetinaAnchorGenerator
from ppdet.modeling.assigners.max_iou import MaxIoUAssigner
from ppdet.modeling.assigners.rpn_target import RPNTargetAssign
from ppdet.modeling.heads.bbox_head import RoIAlign
from ppdet.modeling.heads.proposal_generator import ProposalGenerator
from ppdet.modeling.heads.retina_head import RetinaHead

from .upstream_compare import (
    ClassInfo,
    differences,
    effective,
    load_allow_list,
    unexplained,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "upstream_configs")
CONFIGS = os.path.join(ROOT, "configs")


# ---------------------------------------------------------------- our classes
def signature_defaults(cls: type, only: tuple[str, ...] | None = None) -> dict:
    """Constructor arguments that have a default, with it (``only``: just these names)."""
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.default is inspect.Parameter.empty:
            continue
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or (only and name not in only):
            continue
        out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def _smooth_l1_defaults() -> dict:
    beta, weight = RetinaHead._parse_loss_bbox({})
    return {"beta": beta, "loss_weight": weight}


# Helper classes our heads build from a mapping argument (not registered), and which argument
# builds which (a ``name:`` in the mapping picks another helper).
OUR_HELPERS = {
    "AnchorGenerator": ClassInfo(signature_defaults(AnchorGenerator)),
    "RetinaAnchorGenerator": ClassInfo(signature_defaults(RetinaAnchorGenerator)),
    "AnchorGeneratorSSD": ClassInfo(signature_defaults(AnchorGeneratorSSD)),
    "RPNTargetAssign": ClassInfo(signature_defaults(RPNTargetAssign)),
    "ProposalGenerator": ClassInfo(signature_defaults(ProposalGenerator)),
    "RoIAlign": ClassInfo(signature_defaults(RoIAlign)),
    "MaxIoUAssigner": ClassInfo(signature_defaults(MaxIoUAssigner)),
    "SmoothL1Loss": ClassInfo(_smooth_l1_defaults()),
    **{
        name: ClassInfo(defaults)
        for name, defaults in optim.SCHEDULER_DEFAULTS.items()  # LearningRate.schedulers
    },
    **{
        name: ClassInfo(
            signature_defaults(cls, tuple(k for k in optim._OPTIMIZER_KEYS[name] if k != "type"))
        )
        for name, cls in optim._OPTIMIZERS.items()  # OptimizerBuilder.optimizer: Paddle's
    },
}
OUR_NESTED = {
    "RPNHead": {
        "anchor_generator": "AnchorGenerator",
        "rpn_target_assign": "RPNTargetAssign",
        "train_proposal": "ProposalGenerator",
        "test_proposal": "ProposalGenerator",
    },
    "BBoxHead": {"roi_extractor": "RoIAlign"},
    "CascadeHead": {"roi_extractor": "RoIAlign"},
    "MaskHead": {"roi_extractor": "RoIAlign"},
    "SSDHead": {"anchor_generator": "AnchorGeneratorSSD"},
    "RetinaHead": {
        "anchor_generator": "RetinaAnchorGenerator",
        "bbox_assigner": "MaxIoUAssigner",
        "loss_bbox": "SmoothL1Loss",
    },
}
# The reader sections: the defaults ppdet/data/loader.py applies (checked by
# test_our_reader_defaults_are_the_loaders).
OUR_READER_DEFAULTS = {
    "TrainReader": {
        "sample_transforms": [],
        "batch_transforms": [],
        "batch_size": 1,
        "shuffle": True,
        "drop_last": False,
        "num_workers": 0,
        "mixup_epoch": -1,
        "use_shared_memory": True,
    },
    "EvalReader": {
        "sample_transforms": [],
        "batch_transforms": [],
        "batch_size": 1,
        "shuffle": False,
        "drop_last": False,
        "num_workers": 0,
        "use_shared_memory": True,
    },
}
OUR_READER_DEFAULTS["TestReader"] = dict(OUR_READER_DEFAULTS["EvalReader"])
OUR_TOP_LEVEL = {
    **{name: ClassInfo(d) for name, d in OUR_READER_DEFAULTS.items()},
    "LearningRate": ClassInfo(optim.LEARNING_RATE_DEFAULTS),
    "OptimizerBuilder": ClassInfo(optim.OPTIMIZER_BUILDER_DEFAULTS),
}


def our_table(name: str) -> ClassInfo | None:
    if name in OUR_HELPERS:
        return OUR_HELPERS[name]
    if not is_registered(name):
        return None
    cls = lookup(name)
    return ClassInfo(
        signature_defaults(cls),
        tuple(getattr(cls, "__shared__", ())),
        OUR_NESTED.get(name, {}),
    )


# ---------------------------------------------------------------- PaddleDetection's classes
def _read_yaml(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def upstream_table(version: str):
    """(table, top_level) from class_defaults_<version>.yml."""
    data = _read_yaml(os.path.join(FIXTURES, f"class_defaults_{version}.yml"))

    def info(d: dict) -> ClassInfo:
        return ClassInfo(
            d.get("defaults") or {}, tuple(d.get("shared") or ()), d.get("nested") or {}
        )

    classes = {name: info(d) for name, d in data["classes"].items()}
    top = {name: info(d) for name, d in data["top_level"].items()}
    return classes.get, top


ALLOW_LIST_PATH = os.path.join(FIXTURES, "allowlist.yml")


@pytest.fixture(scope="module")
def allow_list():
    entries = load_allow_list(_read_yaml(ALLOW_LIST_PATH)["entries"])
    yield entries


def counterparts_26() -> list[str]:
    """Our configs (relative to configs/) that have a 2.6 counterpart fixture."""
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "2.6", "*", "*.yml"))):
        rel = os.path.relpath(path, os.path.join(FIXTURES, "2.6"))
        out.append(rel)
    return out


def test_every_config_with_a_26_counterpart_is_compared():
    """The fixtures cover exactly our configs that PaddleDetection 2.6 also has."""
    ours = {
        os.path.relpath(p, CONFIGS)
        for p in glob.glob(os.path.join(CONFIGS, "*", "*.yml"))
        if not os.path.relpath(p, CONFIGS).startswith(("_base_", "datasets"))
    }
    fixtures = set(counterparts_26())
    assert fixtures <= ours, f"fixtures without our config: {sorted(fixtures - ours)}"
    assert len(fixtures) >= 32


def _report(config: str, left) -> str:
    return f"{config}: {len(left)} difference(s) from upstream not in allowlist.yml:\n" + "\n".join(
        f"  {d}" for d in left
    )


@pytest.mark.parametrize("rel", counterparts_26())
def test_config_values_equal_paddledetection_26(rel, allow_list):
    ours = effective(dict(load_config(os.path.join(CONFIGS, rel))), our_table, OUR_TOP_LEVEL)
    table, top = upstream_table("2.6")
    upstream = effective(_read_yaml(os.path.join(FIXTURES, "2.6", rel)), table, top)
    left = unexplained(rel, differences(ours, upstream), allow_list)
    assert not left, _report(rel, left)


def test_our_reader_defaults_are_the_loaders(tiny_demo_data):
    """OUR_READER_DEFAULTS is what build_loader applies to an empty reader section."""
    from ppdet.data.loader import build_dataset, build_loader

    coco = os.path.join(tiny_demo_data, "coco")
    for mode, reader in (("train", "TrainReader"), ("eval", "EvalReader")):
        cfg = {
            "TrainDataset": {
                "name": "COCODataSet",
                "dataset_dir": coco,
                "image_dir": "train",
                "anno_path": "annotations/instances_train.json",
            },
            "EvalDataset": {
                "name": "COCODataSet",
                "dataset_dir": coco,
                "image_dir": "val",
                "anno_path": "annotations/instances_val.json",
            },
        }
        loader = build_loader(cfg, mode, build_dataset(cfg, mode))
        want = OUR_READER_DEFAULTS[reader]
        sampler = loader.batch_sampler
        assert sampler.batch_size == want["batch_size"]
        assert sampler.drop_last == want["drop_last"]
        assert isinstance(sampler.sampler, paddle.io.RandomSampler) == want["shuffle"]
        assert loader.num_workers == want["num_workers"]
