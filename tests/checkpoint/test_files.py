"""Checkpoint files: reading .pdparams / .safetensors / published folders, writing safetensors,
and judging a file by its first bytes."""

import os
import pickle

import numpy as np
import paddle
import pytest

from ppdet.checkpoint import (
    WeightsError,
    checkpoint_header_problem,
    exact_match,
    read_safetensors,
    read_state_dict,
    weights_file,
    write_safetensors,
)

STATE = {
    "backbone.conv.weight": np.arange(24, dtype="float32").reshape(2, 3, 2, 2),
    "head.bias": np.array([0.5, -1.0], dtype="float32"),
}


def test_safetensors_round_trip_is_atomic_and_keeps_metadata(tmp_path):
    path = str(tmp_path / "m.safetensors")
    assert write_safetensors(STATE, path, metadata={"name": "m"}) == path
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temp file left
    back = read_safetensors(path)
    assert sorted(back) == sorted(STATE)
    assert all(np.array_equal(back[k], STATE[k]) for k in STATE)
    head = open(path, "rb").read(64)
    assert checkpoint_header_problem(head, path, os.path.getsize(path)) is None


def test_pdparams_prefix_and_published_folder(tmp_path):
    paddle.save({k: paddle.to_tensor(v) for k, v in STATE.items()}, str(tmp_path / "w.pdparams"))
    assert weights_file(str(tmp_path / "w")) == str(tmp_path / "w.pdparams")
    state = read_state_dict(str(tmp_path / "w"))
    assert all(np.array_equal(state[k], STATE[k]) for k in STATE)

    folder = tmp_path / "published"
    folder.mkdir()
    paddle.save({"other": paddle.zeros([1])}, str(folder / "model.pdparams"))
    write_safetensors(STATE, str(folder / "model.safetensors"))
    assert sorted(read_state_dict(str(folder))) == sorted(STATE)  # safetensors preferred
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="empty: a directory without weights"):
        read_state_dict(str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="weights not found: .*nope"):
        read_state_dict(str(tmp_path / "nope"))


def test_damaged_safetensors_is_one_line(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(WeightsError, match="bad.safetensors: not a readable safetensors file"):
        read_safetensors(str(path))


@pytest.mark.parametrize(
    "name, head, size, problem",
    [
        ("m.pdparams", pickle.dumps({"a": 1}, protocol=2), 100, None),
        ("m.pdparams", pickle.dumps({"a": 1}, protocol=4), 100, None),
        ("m.pdopt", b"\x80\x05rest", 100, None),
        ("m.pdparams", b"", 0, "pickle header"),
        ("m.pdparams", b"<html>oops</html>", 17, "pickle header"),
        ("m.pdparams", b"\x80\x09", 2, "pickle header"),  # protocol 9 does not exist
        ("m.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00{}", 10, None),
        ("m.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00{}", 9, "bad header"),  # cut short
        ("m.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00[]", 10, "bad header"),
        ("m.safetensors", b"\x02\x00", 2, "too short"),
        ("labels.txt", b"", 0, None),  # other suffixes are not judged here
    ],
)
def test_header_check(name, head, size, problem):
    found = checkpoint_header_problem(head, name, size)
    assert (found is None) if problem is None else (problem in found)


def test_exact_match_pairs_names_and_shapes():
    own = {
        "backbone.conv.weight": paddle.zeros([2, 3, 2, 2]),
        "head.bias": paddle.zeros([3]),
        "head.weight": paddle.zeros([3, 3]),
    }
    report, to_set = exact_match(own, {**STATE, "extra": np.zeros(1)}, "src")
    assert report.loaded == ["backbone.conv.weight"] and list(to_set) == report.loaded
    assert report.mismatched == [("head.bias", (2,), (3,))]
    assert report.missing == ["head.weight"] and report.unused == ["extra"]
    assert report.summary().startswith("weights src: loaded 1, shape-mismatched 1 [head.bias")
