"""Every config carries PaddleDetection's values: key by key, class defaults included.

Each config under configs/ with a PaddleDetection 2.6 counterpart
(tests/fixtures/upstream_configs/2.6/<family>/<name>.yml, ``_BASE_`` merged) is flattened with
our classes' defaults and compared with the counterpart flattened with 2.6's defaults
(class_defaults_2.6.yml); see upstream_compare.py. Each v0.1-path config (configs/<name>.yml)
is compared with v0.1's own config (0.1/<name>.yml, v0.1's defaults in class_defaults_0.1.yml)
through v01_key_mapping.yml (see v01_mapping.py). Every difference must be listed, with its
reason, in tests/fixtures/upstream_configs/allowlist.yml; an entry that explains nothing fails
too (the list stays true).
"""

from __future__ import annotations

import functools
import glob
import inspect
import os

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
from .v01_mapping import compare_v01, load_rules

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
    top = {name: info(d) for name, d in (data.get("top_level") or {}).items()}
    for name in ("LearningRate", "OptimizerBuilder"):  # v0.1: plain classes
        if name not in top and name in classes:
            top[name] = classes[name]
    return classes.get, top


ALLOW_LIST_PATH = os.path.join(FIXTURES, "allowlist.yml")
V01_FEEDS = ("train_feed", "eval_feed", "test_feed")  # v0.1 top-level keys naming its readers


def counterparts_26() -> list[str]:
    """Our configs (relative to configs/) that have a 2.6 counterpart fixture."""
    base = os.path.join(FIXTURES, "2.6")
    return sorted(os.path.relpath(p, base) for p in glob.glob(os.path.join(base, "*", "*.yml")))


def counterparts_01() -> list[str]:
    """Our v0.1-path configs (relative to configs/), one per v0.1 fixture: configs/<name>.yml
    (configs/ssd/<name>.yml for SSD, as in v0.1)."""
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(FIXTURES, "0.1", "*.yml")))
    return [f"ssd/{n}" if n.startswith("ssd_") else n for n in names]


def _ours(rel: str) -> dict:
    return effective(dict(load_config(os.path.join(CONFIGS, rel))), our_table, OUR_TOP_LEVEL)


@functools.cache
def differences_26(rel: str) -> tuple:
    table, top = upstream_table("2.6")
    upstream = effective(_read_yaml(os.path.join(FIXTURES, "2.6", rel)), table, top)
    return tuple(differences(_ours(rel), upstream))


@functools.cache
def differences_01(rel: str) -> tuple[tuple, tuple[str, ...]]:
    """(differences in v0.1 key names, v0.1 keys no mapping rule covers)."""
    table, top = upstream_table("0.1")
    v01 = _read_yaml(os.path.join(FIXTURES, "0.1", os.path.basename(rel)))
    flat = effective(v01, table, top, V01_FEEDS)
    rules = load_rules(_read_yaml(os.path.join(FIXTURES, "v01_key_mapping.yml")))
    diffs, unmapped = compare_v01(flat, _ours(rel), rules)
    return tuple(diffs), tuple(unmapped)


def _allow_list():
    return load_allow_list(_read_yaml(ALLOW_LIST_PATH)["entries"])


def _report(config: str, left, against: str) -> str:
    head = (
        f"{config}: {len(left)} difference(s) from PaddleDetection {against} not in allowlist.yml"
    )
    return head + ":\n" + "\n".join(f"  {d}" for d in left)


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


@pytest.mark.parametrize("rel", counterparts_26())
def test_config_values_equal_paddledetection_26(rel):
    left = unexplained(rel, differences_26(rel), _allow_list(), "2.6")
    assert not left, _report(rel, left, "2.6")


def test_every_v01_config_exists_at_its_v01_path():
    """One config per v0.1 seed config, at v0.1's own path (26: the 25 seed tarballs and the
    R101-vd-FPN 2x row, whose link points at another tarball)."""
    rels = counterparts_01()
    assert len(rels) == 26
    missing = [r for r in rels if not os.path.isfile(os.path.join(CONFIGS, r))]
    assert not missing, missing


@pytest.mark.parametrize("rel", counterparts_01())
def test_config_values_equal_paddledetection_01(rel):
    diffs, unmapped = differences_01(rel)
    assert not unmapped, f"{rel}: v0.1 keys no rule of v01_key_mapping.yml covers: {unmapped}"
    left = unexplained(rel, diffs, _allow_list(), "0.1")
    assert not left, _report(rel, left, "0.1")


def test_every_allow_list_entry_explains_a_difference():
    allow = _allow_list()
    for rel in counterparts_26():
        unexplained(rel, differences_26(rel), allow, "2.6")
    for rel in counterparts_01():
        unexplained(rel, differences_01(rel)[0], allow, "0.1")
    unused = [f"{e.against} {e.config} {e.key}" for e in allow if not e.used]
    assert not unused, f"allow-list entries that explain nothing (remove them): {unused}"


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
        assert sampler.shuffle == want["shuffle"]
        assert loader.num_workers == want["num_workers"]
