"""EfficientDet-D0: parameters and multiply-adds of each part and of the whole detector,
printed next to the published figures, and the network's exported CPU latency at 512.

    MKL_DEBUG_CPU_TYPE=5 python bench/efficientdet.py [--size 512] [--repeat 5] [--no-export]
        [--write]

Published: EfficientNet-B0 5.3M parameters and 0.39B FLOPs at 224 x 224 with its ImageNet
classifier (Tan & Le 2019, Table 2); EfficientDet-D0 3.9M parameters and 2.5B FLOPs at
512 x 512 (Tan et al. 2020, Table 2). Both papers' "FLOPs" are multiply-adds; here GMACs are
counted with forward hooks on the convolutions and linear layers (pooling, activations,
norms and element-wise sums are not counted). Parameters are learnable ones (BN running
statistics excluded). The detector is ``configs/efficientdet/efficientdet_d0_coco.yml``.

Latency: median of ``--repeat`` runs (batch 1, after a warm-up) of the network (backbone,
BiFPN, class/box nets: the raw outputs, without anchor decoding and NMS), eager and exported
with ``paddle.jit.save`` and run by Paddle Inference (oneDNN, ``--threads`` threads).
``--write`` puts the table into BENCHMARK.md (section ``efficientdet``).
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

import ppdet  # noqa: E402
from bench.backbones import time_eager, time_exported  # noqa: E402
from bench.report import machine, write_section  # noqa: E402
from ppdet.modeling.backbones import EfficientNet  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "efficientdet", "efficientdet_d0_coco.yml")
IMAGENET_CLASSES = 1000
HEAD_CHANNELS = 1280  # EfficientNet-B0's 1x1 head conv before the classifier


def learnable_params(layer: nn.Layer) -> int:
    return sum(int(np.prod(p.shape)) for p in layer.parameters() if not p.stop_gradient)


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


class Network(nn.Layer):
    """image [1, 3, S, S] -> the head's raw outputs (class logits and deltas of every level)."""

    def __init__(self, detector: nn.Layer, upto: str = "head"):
        super().__init__()
        self.detector, self.upto = detector, upto

    def forward(self, image):
        feats = self.detector.backbone(image)
        if self.upto == "backbone":
            return feats
        feats = self.detector.neck(feats)
        if self.upto == "neck":
            return feats
        cls_logits, deltas = self.detector.head(feats)
        return cls_logits + deltas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="EfficientDet-D0 input side")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--threads", type=int, default=2, help="Paddle Inference CPU threads")
    parser.add_argument("--no-export", action="store_true", help="skip the latency runs")
    parser.add_argument("--write", action="store_true", help="write BENCHMARK.md's section")
    args = parser.parse_args()
    paddle.seed(0)

    classifier = ImageNetClassifier(EfficientNet("b0"))
    classifier.eval()
    det = ppdet.build_model(ppdet.load_config(CONFIG))
    det.eval()
    x224 = paddle.zeros([1, 3, 224, 224])
    xdet = paddle.zeros([1, 3, args.size, args.size])
    upto = {k: Network(det, k) for k in ("backbone", "neck", "head")}
    macs = {k: gmacs(net, xdet) for k, net in upto.items()}
    size = str(args.size)
    rows = [
        (
            "EfficientNet-B0 + ImageNet classifier",
            "224",
            learnable_params(classifier),
            gmacs(classifier, x224),
            "5.3M, 0.39B",
        ),
        (
            "EfficientNet-B0 backbone (C3-C5)",
            size,
            learnable_params(det.backbone),
            macs["backbone"],
            "-",
        ),
        (
            "BiFPN (64 ch, 3 stacks, P3-P7)",
            size,
            learnable_params(det.neck),
            macs["neck"] - macs["backbone"],
            "-",
        ),
        (
            "class + box nets (3 separable convs)",
            size,
            learnable_params(det.head),
            macs["head"] - macs["neck"],
            "-",
        ),
        ("EfficientDet-D0 (whole)", size, learnable_params(det), macs["head"], "3.9M, 2.5B"),
    ]
    lines = [
        "| part | input | params (M) | GMACs | published (params, FLOPs = multiply-adds) |",
        "|---|---|---|---|---|",
    ]
    print(f"{'model':40s} {'input':>5s} {'params':>9s} {'GMACs':>7s}   published")
    for name, sz, params, gm, published in rows:
        print(f"{name:40s} {sz:>5s} {params / 1e6:8.3f}M {gm:7.3f}   {published}")
        lines.append(f"| {name} | {sz} | {params / 1e6:.3f} | {gm:.3f} | {published} |")
    latency = ""
    if not args.no_export:
        net = upto["head"]
        eager = time_eager(net, xdet, args.repeat)
        exported = time_exported(net, xdet.numpy(), args.repeat, args.threads)
        latency = (
            f"\nNetwork latency at {args.size} x {args.size} (batch 1, raw head outputs, no "
            f"decode / NMS; median of {args.repeat}): eager {eager * 1000:.0f} ms, exported "
            f"(Paddle Inference, oneDNN, {args.threads} threads) {exported * 1000:.0f} ms."
        )
        print(latency.strip())
    if args.write:
        write_section(
            "efficientdet",
            "## EfficientDet-D0: size and latency\n\n"
            f"`MKL_DEBUG_CPU_TYPE=5 python bench/efficientdet.py --write` on {machine()}.\n"
            'GMACs count Conv2D/Linear multiply-adds (the papers\' "FLOPs").\n\n'
            + "\n".join(lines)
            + "\n"
            + latency,
        )


if __name__ == "__main__":
    main()
