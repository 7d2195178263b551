"""Parameters and multiply-adds of EfficientNet-B0 and of the EfficientDet-D0 parts built so
far, printed next to the published figures.

    .venv/bin/python bench/efficientdet.py [--size 512]

Published: EfficientNet-B0 5.3M parameters and 0.39B FLOPs at 224 x 224 with its ImageNet
classifier (Tan & Le 2019, Table 2); EfficientDet-D0 3.9M parameters and 2.5B FLOPs at
512 x 512 (Tan et al. 2020, Table 2). Both papers' "FLOPs" are multiply-adds; here GMACs are
counted with forward hooks on the convolutions and linear layers (pooling, activations and
element-wise sums are not counted). Parameters are learnable ones (BN running statistics
excluded). The EfficientDet class/box heads are not built yet, so the D0 row covers backbone +
BiFPN only and says so.
"""

from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle import nn  # noqa: E402

from ppdet.modeling.backbones import EfficientNet  # noqa: E402
from ppdet.modeling.necks import BiFPN  # noqa: E402

IMAGENET_CLASSES = 1000
HEAD_CHANNELS = 1280  # EfficientNet-B0's 1x1 head conv before the classifier


def learnable_params(layer: nn.Layer) -> int:
    return sum(
        int(np.prod(p.shape))
        for name, p in layer.named_parameters()
        if not name.endswith(("_mean", "_variance"))
    )


def gmacs(layer: nn.Layer, inputs) -> float:
    """Multiply-adds (1e9) of the Conv2D and Linear layers for one forward of ``inputs``."""
    macs = []

    def conv_hook(lyr, _inputs, output):
        kh, kw = lyr.weight.shape[2:]
        macs.append(int(np.prod(output.shape)) * lyr.weight.shape[1] * kh * kw)

    def linear_hook(lyr, _inputs, output):
        macs.append(int(np.prod(output.shape)) * lyr.weight.shape[0])

    hooks = []
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, nn.Conv2D):
            hooks.append(sub.register_forward_post_hook(conv_hook))
        elif isinstance(sub, nn.Linear):
            hooks.append(sub.register_forward_post_hook(linear_hook))
    with paddle.no_grad():
        layer(inputs)
    for h in hooks:
        h.remove()
    return sum(macs) / 1e9


class ImageNetClassifier(nn.Layer):
    """EfficientNet-B0 with its ImageNet head: 1x1 conv 320 -> 1280, BN, swish, pool, FC."""

    def __init__(self, backbone: EfficientNet):
        super().__init__()
        self.backbone = backbone
        self.conv_head = nn.Conv2D(backbone.out_channels[-1], HEAD_CHANNELS, 1, bias_attr=False)
        self.bn_head = nn.BatchNorm2D(HEAD_CHANNELS)
        self.fc = nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES)

    def forward(self, image):
        x = nn.functional.swish(self.bn_head(self.conv_head(self.backbone(image)[-1])))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class BackboneAndNeck(nn.Layer):
    def __init__(self, backbone: nn.Layer, neck: nn.Layer):
        super().__init__()
        self.backbone, self.neck = backbone, neck

    def forward(self, image):
        return self.neck(self.backbone(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="EfficientDet-D0 input side")
    args = parser.parse_args()
    paddle.seed(0)

    backbone = EfficientNet("b0")
    backbone.eval()
    classifier = ImageNetClassifier(backbone)
    classifier.eval()
    bifpn = BiFPN(backbone.out_channels, 64, num_stacks=3)
    det = BackboneAndNeck(backbone, bifpn)
    det.eval()
    x224 = paddle.zeros([1, 3, 224, 224])
    xdet = paddle.zeros([1, 3, args.size, args.size])

    rows = [
        (
            "EfficientNet-B0 + ImageNet classifier",
            "224",
            learnable_params(classifier),
            gmacs(classifier, x224),
            "5.3M params, 0.39B FLOPs",
        ),
        (
            "EfficientNet-B0 backbone (C3-C5)",
            "224",
            learnable_params(backbone),
            gmacs(backbone, x224),
            "-",
        ),
        (
            "EfficientNet-B0 backbone (C3-C5)",
            str(args.size),
            learnable_params(backbone),
            gmacs(backbone, xdet),
            "-",
        ),
        (
            "BiFPN (64 ch, 3 stacks, P3-P7)",
            str(args.size),
            learnable_params(bifpn),
            gmacs(det, xdet) - gmacs(backbone, xdet),
            "-",
        ),
        (
            "EfficientDet-D0 without class/box heads",
            str(args.size),
            learnable_params(det),
            gmacs(det, xdet),
            "3.9M params, 2.5B FLOPs (whole D0)",
        ),
    ]
    print(f"{'model':42s} {'input':>5s} {'params':>9s} {'GMACs':>7s}   published")
    for name, size, params, macs, published in rows:
        print(f"{name:42s} {size:>5s} {params / 1e6:8.3f}M {macs:7.3f}   {published}")
    print(
        "EfficientDet-D0's class and box heads are not built yet (second phase); its total "
        "cannot be measured here."
    )


if __name__ == "__main__":
    main()
