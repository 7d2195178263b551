"""Fluid-era conventions declared by sublayers: merging, conflicts, what a model lacks."""

import paddle
import pytest

from ppdet.modeling.conventions import ConventionError, missing_conventions, model_conventions


class Op(paddle.nn.Layer):
    def __init__(self, conventions=None):
        super().__init__()
        self.fc = paddle.nn.Linear(2, 2)
        if conventions is not None:
            self.conventions = conventions


class Detector(paddle.nn.Layer):
    def __init__(self, rpn=None, roi=None, head=None):
        super().__init__()
        self.rpn = Op(rpn)
        self.roi = paddle.nn.Sequential(Op(roi))  # nested one level deeper
        self.head = Op(head)


def test_declarations_of_all_sublayers_are_merged():
    model = Detector(
        rpn={"box_coder_plus_one": True, "pixel_offset": True},
        roi={"roi_align_aligned": False},
        head={"box_coder_plus_one": True},  # the same value twice is fine
    )
    assert model_conventions(model) == {
        "box_coder_plus_one": True,
        "pixel_offset": True,
        "roi_align_aligned": False,
    }
    assert model_conventions(Detector()) == {}
    model.conventions = {"anchor_rounding": "fluid"}  # the model itself may declare too
    assert model_conventions(model)["anchor_rounding"] == "fluid"


def test_a_conflict_names_both_sublayers():
    model = Detector(rpn={"box_coder_plus_one": True}, head={"box_coder_plus_one": False})
    with pytest.raises(ConventionError) as err:
        model_conventions(model)
    text = str(err.value)
    assert "rpn declares box_coder_plus_one=True" in text
    assert "head declares box_coder_plus_one=False" in text and "\n" not in text


def test_a_declaration_that_is_not_a_dict_is_refused():
    with pytest.raises(ConventionError, match="rpn.conventions must be a dict"):
        model_conventions(Detector(rpn=["box_coder_plus_one"]))


def test_missing_names_absent_and_different_values():
    required = {"box_coder_plus_one": True, "roi_align_aligned": False, "anchor_rounding": "fluid"}
    declared = {"box_coder_plus_one": True, "roi_align_aligned": True, "extra": 1}
    assert missing_conventions(required, declared) == [
        "roi_align_aligned=False (model: True)",
        "anchor_rounding='fluid' (not declared)",
    ]
    assert missing_conventions({}, declared) == []
    assert missing_conventions(required, {**declared, **required}) == []
