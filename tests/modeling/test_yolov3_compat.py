"""Parameter names and shapes equal PaddleDetection 2.6's (tests/fixtures/compat/*.txt), so its
.pdparams load unchanged."""

from pathlib import Path

import pytest

from ppdet.modeling.architectures import YOLOv3
from ppdet.modeling.backbones import DarkNet, MobileNet, MobileNetV3, ResNet
from ppdet.modeling.heads import YOLOv3Head
from ppdet.modeling.necks import YOLOv3FPN
from ppdet.modeling.postprocess import BBoxPostProcess

COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "compat"


def read_list(name):
    """{param name: (shape tuple, dtype)} from a compat list."""
    entries = {}
    for line in (COMPAT / f"{name}.txt").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        entries[key] = (tuple(int(v) for v in shape.strip("[]").split(",") if v.strip()), dtype)
    return entries


def state_entries(layer, prefix=""):
    return {
        prefix + k: (tuple(v.shape), str(v.dtype).replace("paddle.", ""))
        for k, v in layer.state_dict().items()
    }


def assert_same_entries(ours, theirs):
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    wrong = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert not wrong, f"shape/dtype differ: {list(wrong.items())[:5]}"


def build_yolov3(backbone):
    neck = YOLOv3FPN(in_channels=backbone.out_channels)
    head = YOLOv3Head(num_classes=80, in_channels=neck.out_channels)
    return YOLOv3(backbone, neck, head, BBoxPostProcess())


@pytest.mark.parametrize(
    "name,backbone_cls",
    [
        ("darknet53", lambda: DarkNet(depth=53)),
        ("mobilenet_v1", lambda: MobileNet(scale=1.0)),
        ("r34", lambda: ResNet(depth=34, return_idx=[1, 2, 3], freeze_at=-1, freeze_norm=False)),
        ("mobilenet_v3_large", lambda: MobileNetV3(model_name="large", feature_maps=[7, 13, 16])),
        ("mobilenet_v3_small", lambda: MobileNetV3(model_name="small", feature_maps=[4, 9, 12])),
    ],
)
def test_yolov3_state_dict_matches_paddledetection(name, backbone_cls):
    backbone = backbone_cls()
    if name != "r34":  # the ResNet-34 list is that of all 4 stages (tests/modeling/test_resnet.py)
        assert_same_entries(state_entries(backbone, "backbone."), read_list(f"backbone_{name}"))
    model = build_yolov3(backbone)
    assert_same_entries(state_entries(model), read_list(f"yolov3_{name}"))
