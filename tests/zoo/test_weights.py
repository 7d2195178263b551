"""Weight loading: the report, strict and lenient modes, unreadable files."""

import numpy as np
import paddle
import pytest

from ppdet.zoo.weights import WeightsError, load_weights, read_weights


class Tiny(paddle.nn.Layer):
    def __init__(self, classes=3):
        super().__init__()
        self.body = paddle.nn.Linear(4, 8)
        self.head = paddle.nn.Linear(8, classes)


def save(layer, path):
    paddle.save(layer.state_dict(), str(path))
    return str(path)


def test_strict_load_copies_values_and_reports(tmp_path, capsys):
    src, dst = Tiny(), Tiny()
    path = save(src, tmp_path / "w.pdparams")
    report = load_weights(dst, str(tmp_path / "w"), strict=True)  # prefix without .pdparams
    assert sorted(report.loaded) == sorted(src.state_dict())
    assert not report.missing and not report.mismatched and not report.unused
    for name, value in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name].numpy(), value.numpy())
    assert (
        f"weights {path}: loaded 4, shape-mismatched 0, missing 0, unused 0"
        in capsys.readouterr().out
    )


def test_lenient_load_skips_a_different_head_and_says_so(tmp_path):
    src, dst = Tiny(classes=5), Tiny(classes=3)
    state = src.state_dict()
    state["extra.weight"] = paddle.zeros([2])
    paddle.save(state, str(tmp_path / "w.pdparams"))
    before = dst.head.weight.numpy().copy()
    report = load_weights(dst, str(tmp_path / "w.pdparams"), strict=False)
    assert sorted(report.loaded) == ["body.bias", "body.weight"]
    assert [m[0] for m in report.mismatched] == ["head.weight", "head.bias"]
    assert report.unused == ["extra.weight"]
    np.testing.assert_array_equal(dst.head.weight.numpy(), before)
    text = report.summary()
    assert (
        "shape-mismatched 2 [head.weight (8, 5)->(8, 3)" in text
        and "unused 1 [extra.weight]" in text
    )


def test_strict_load_names_what_does_not_fit(tmp_path):
    path = save(Tiny(classes=5), tmp_path / "w.pdparams")
    with pytest.raises(WeightsError, match=r"does not fit this model: .*head.weight"):
        load_weights(Tiny(classes=3), path, strict=True)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(WeightsError, match="weights not found"):
        load_weights(Tiny(), str(tmp_path / "nope"))
    html = tmp_path / "page.pdparams"
    html.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(WeightsError, match="page.pdparams: an HTML/XML page"):
        read_weights(str(html))


def test_truncated_file_is_reported(tmp_path):
    path = save(Tiny(), tmp_path / "w.pdparams")
    data = open(path, "rb").read()
    (tmp_path / "cut.pdparams").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.pdparams: truncated"):
        read_weights(str(tmp_path / "cut.pdparams"))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"weight": Evil()}))
    with pytest.raises(
        WeightsError, match=r"evil.pdparams: refused to load: the file asks for (posix|os)\.system"
    ):
        load_weights(Tiny(), str(path))
    assert not marker.exists()


def test_safe_reader_returns_what_paddle_saved(tmp_path):
    src = Tiny()
    path = save(src, tmp_path / "w.pdparams")
    state = read_weights(path)
    assert sorted(state) == sorted(src.state_dict())
    for name, value in src.state_dict().items():
        np.testing.assert_array_equal(state[name], value.numpy())
