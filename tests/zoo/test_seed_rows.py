"""The seed zoo's rows as served: every live v0.1 row's config builds exactly the parameters its
tarball converts to (the genuine v0.1 lists, tests/fixtures/legacy_v01), and weights loaded
strictly into a config they do not fit are refused naming the config they do fit (the
R101-vd-FPN 2x row, whose link is the R101-FPN 2x file)."""

from __future__ import annotations

import os

import numpy as np
import paddle
import pytest
import yaml

import ppdet
from ppdet.checkpoint import WeightsError
from ppdet.zoo.index import DEFAULT_INDEX, load_index
from ppdet.zoo.legacy import map_shapes, write_legacy_tar
from ppdet.zoo.weights import load_weights
from tests.conftest import ROOT
from tests.zoo.http_server import Serve
from tests.zoo.test_legacy import FIXTURES, read_list

MISLINKED = "faster_rcnn_r101_vd_fpn_2x"  # the seed row whose link is another row's file
ITS_FILE = "faster_rcnn_r101_fpn_2x"


def build_lazy(config: str):
    with paddle.LazyGuard():
        return ppdet.build_model(ppdet.load_config(os.path.join(ROOT, config)))


def live_seed_rows() -> list:
    return [e for e in load_index() if e.format == "legacy_v01" and e.config]


def test_the_seed_rows_now_live():
    assert not [e.name for e in load_index() if e.format == "legacy_v01" and e.planned]
    live = {e.name for e in live_seed_rows()}
    for name in (
        MISLINKED,
        "faster_rcnn_x101_vd_64x4d_fpn_1x",
        "faster_rcnn_se154_vd_fpn_s1x",
        "mask_rcnn_se154_vd_fpn_s1x",
    ):
        assert name in live, name
    mislinked = load_index().require(MISLINKED)
    assert mislinked.config == f"configs/{ITS_FILE}.yml" and mislinked.legacy == ITS_FILE
    assert mislinked.urls[0].endswith(f"/{ITS_FILE}.tar") and "R101-FPN" in mislinked.notes


@pytest.mark.parametrize("entry", live_seed_rows(), ids=lambda e: e.name)
def test_a_live_rows_config_builds_the_parameters_of_its_tarball(entry):
    """The config's state dict, names and shapes, equals the converted genuine v0.1 list of
    the tarball the row links (for the mislinked row: the R101-FPN 2x list)."""
    expected = map_shapes(read_list(FIXTURES / "legacy_v01" / f"{entry.legacy}.txt"), entry.legacy)
    model = build_lazy(entry.config)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected


@pytest.fixture(scope="module")
def r101_fpn_tar(tmp_path_factory):
    """A v0.1 tarball with the variable names of faster_rcnn_r101_fpn_2x.tar, narrow shapes."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in read_list(FIXTURES / "legacy_v01" / f"{ITS_FILE}.txt").items():
        if not name.startswith(("cls_score", "bbox_pred", "rpn_")):
            shape = tuple(min(d, 2) for d in shape)
        tensors[name] = rng.normal(size=shape).astype(np.float32)
    path = str(tmp_path_factory.mktemp("legacy") / f"{ITS_FILE}.tar")
    write_legacy_tar(tensors, path)
    return path


def index_serving(tmp_path, url: str) -> str:
    """The package index with every entry linking the R101-FPN 2x file served from ``url``."""
    with open(DEFAULT_INDEX, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    for entry in data["models"]:
        if entry["name"] in (MISLINKED, ITS_FILE):
            entry["urls"] = [url]
    path = tmp_path / "models.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_the_mislinked_row_in_the_r101_vd_config_names_the_config_to_use(
    r101_fpn_tar, tmp_path, http_server
):
    url = http_server.route(f"/zoo/{ITS_FILE}.tar", Serve(open(r101_fpn_tar, "rb").read()))
    index = index_serving(tmp_path, url)
    model = build_lazy("configs/faster_rcnn_r101_vd_fpn_2x.yml")  # its `weights:` names the row
    with pytest.raises(WeightsError) as err:
        load_weights(model, MISLINKED, strict=True, quiet=True, index=index)
    text = str(err.value)
    assert "\n" not in text and "does not fit this model" in text
    assert text.endswith(
        f"zoo entry {MISLINKED} holds the model of configs/{ITS_FILE}.yml: "
        f"use -c configs/{ITS_FILE}.yml"
    )
    assert "fluid-era behaviour" not in text  # the behaviour check passed: both are v0.1 configs
    # the same file as a local path: the converted record's config is named
    with pytest.raises(WeightsError) as err:
        load_weights(model, r101_fpn_tar, strict=True, quiet=True)
    assert str(err.value).endswith(
        f"these v0.1 weights ({ITS_FILE}) are the model of configs/{ITS_FILE}.yml (zoo entry "
        f"{ITS_FILE}): use -c configs/{ITS_FILE}.yml"
    )


def test_fine_tuning_from_the_mislinked_row_names_the_config_too(
    r101_fpn_tar, tmp_path, http_server
):
    """A lenient load (pretrain_weights) stops at the backbone that does not fit, and says
    which config the weights belong to."""
    url = http_server.route(f"/zoo/{ITS_FILE}.tar", Serve(open(r101_fpn_tar, "rb").read()))
    model = build_lazy("configs/faster_rcnn_r101_vd_fpn_2x.yml")
    with pytest.raises(WeightsError) as err:
        load_weights(model, MISLINKED, strict=False, quiet=True, index=index_serving(tmp_path, url))
    text = str(err.value)
    assert "\n" not in text and "variant b" in text and "variant d" in text
    assert text.endswith(f"use -c configs/{ITS_FILE}.yml")
