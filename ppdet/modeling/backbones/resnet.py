"""ResNet, ResNet-vd and ResNeXt backbones (He et al. 2016; He et al. "Bag of Tricks" 2019;
Xie et al. 2017), with sublayer names equal to PaddleDetection 2.x so its ``.pdparams`` load
unchanged.

Layout for an input [B, 3, H, W]:

    conv1   stem, stride 4 with its 3x3/2 max pool:
            variant a/b: ``conv1.conv1`` 7x7/2, 3 -> ch_in (``conv1.res_conv1`` when groups > 1)
            variant c/d: ``conv1.conv1_1/_2/_3`` 3x3 (first one stride 2), 3 -> ch_in/2 -> ch_in/2
                         -> ch_in
    res2..res5  stage i (0..3) at stride 4 * 2**i; blocks ``res{i+2}a``, ``res{i+2}b``, ... (a
            stage with more than 10 blocks: ``a``, ``b1``, ``b2``, ...). Basic blocks (depth 18,
            34) give 64 * 2**i channels, bottlenecks (depth >= 50) 256 * 2**i.

Blocks: ``branch2a``/``branch2b`` (basic) or ``branch2a``/``branch2b``/``branch2c``
(bottleneck), each a conv (``conv``) + norm (``norm``) unit; the first block of every stage
has a projection shortcut ``short`` (also res2a of R18/R34, 64 -> 64). Variants differ in
where the stride sits and in the shortcut:

    a: stride on the bottleneck's 1x1 ``branch2a``          7x7 stem
    b: stride on the 3x3 ``branch2b``                      7x7 stem
    c: as b                                                deep 3x3 stem
    d (alias "vd"): as c, and stride-2 shortcuts are a 2x2 average pool + 1x1 conv
       (``short.pool`` + ``short.conv``, so ``short.conv.conv.weight``)

With ``std_senet`` every block scales its residual branch by squeeze-excitation
(``se.squeeze`` / ``se.extract``, see senet.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn

from ppdet.config.registry import register
from ppdet.modeling.layers.conv_norm import ConvNormLayer
from ppdet.modeling.layers.norms import EPS, MOMENTUM

__all__ = [
    "ResNet",
    "ResStage",
    "ResConvNorm",
    "BasicBlock",
    "BottleNeck",
    "SELayer",
    "resnet_stage_name",
]

# depth -> blocks per stage (res2, res3, res4, res5)
RESNET_BLOCKS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
VARIANTS = ("a", "b", "c", "d", "vd")
STAGE_WIDTHS = (64, 128, 256, 512)  # ch_out of each stage before the block expansion
SE_RATIO = 16  # squeeze-excitation reduction


def _normalize_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(
            f"ResNet variant {variant!r} is not supported (known: {', '.join(VARIANTS)})"
        )
    return "d" if variant == "vd" else variant


def resnet_stage_name(index: int) -> str:
    """Name of stage ``index`` (0-based): 0 -> "res2", ..., 3 -> "res5"."""
    return f"res{index + 2}"


def _block_name(stage: str, j: int, count: int) -> str:
    """``res4a``, ``res4b``, ...; for more than 10 blocks ``res4a``, ``res4b1``, ``res4b2``, ..."""
    if count > 10 and j > 0:
        return f"{stage}b{j}"
    return f"{stage}{chr(ord('a') + j)}"


class ResConvNorm(ConvNormLayer):
    """Conv (no bias) -> norm -> activation as sublayers ``conv`` and ``norm``.

    x: [B, in_channels, H, W] -> [B, out_channels, ceil(H / stride), ceil(W / stride)].
    lr_mult scales the learning rate of the conv weight and of the norm's affine parameters
    (these stay at 0 under freeze_norm).
    """

    sublayer_names = ("conv", "norm")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
        lr_mult: float = 1.0,
        **norm_kw,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, groups=groups, act=act, **norm_kw
        )
        if lr_mult != 1.0:
            for p in self.parameters():
                if p.trainable:  # not the norm statistics, nor frozen affine parameters (lr 0)
                    attr = dict(p.optimize_attr or {})
                    attr["learning_rate"] = attr.get("learning_rate", 1.0) * lr_mult
                    p.optimize_attr = attr


class _PoolShortcut(nn.Layer):
    """vd shortcut: 2x2/2 average pool (ceil mode) then a 1x1 conv+norm named ``conv``.

    x: [B, C, H, W] -> [B, out, ceil(H / 2), ceil(W / 2)].
    """

    def __init__(self, in_channels: int, out_channels: int, lr_mult: float, norm_kw: dict):
        super().__init__()
        self.pool = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
        self.conv = ResConvNorm(in_channels, out_channels, 1, lr_mult=lr_mult, **norm_kw)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.conv(self.pool(x))


def _shortcut(
    in_channels: int, out_channels: int, stride: int, variant: str, lr_mult: float, norm_kw: dict
):
    """Projection shortcut of a stage's first block (variant d: pooled when stride is 2)."""
    if variant == "d" and stride == 2:
        return _PoolShortcut(in_channels, out_channels, lr_mult, norm_kw)
    return ResConvNorm(in_channels, out_channels, 1, stride=stride, lr_mult=lr_mult, **norm_kw)


class SELayer(nn.Layer):
    """Squeeze-excitation: x * sigmoid(extract(relu(squeeze(mean_hw(x))))).

    ``squeeze``: Linear C -> C / ratio, ``extract``: Linear C / ratio -> C (weights [in, out]).
    x: [B, C, H, W] -> [B, C, H, W].
    """

    def __init__(self, channels: int, ratio: int = SE_RATIO):
        super().__init__()
        hidden = channels // ratio
        self.squeeze = nn.Linear(channels, hidden)
        self.extract = nn.Linear(hidden, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        s = x.mean(axis=[2, 3])  # [B, C]
        s = F.sigmoid(self.extract(F.relu(self.squeeze(s))))  # [B, C]
        return x * s.unsqueeze([2, 3])  # [B, C, 1, 1] broadcast


class _ResidualBlock(nn.Layer):
    """Shared forward: relu(se(branches(x)) + shortcut(x))."""

    def _add_tail(
        self,
        ch_in: int,
        ch_out: int,
        stride: int,
        shortcut: bool,
        variant: str,
        std_senet: bool,
        lr_mult: float,
        norm_kw: dict,
    ) -> None:
        self.shortcut = shortcut
        if not shortcut:
            self.short = _shortcut(ch_in, ch_out, stride, variant, lr_mult, norm_kw)
        self.se = SELayer(ch_out) if std_senet else None

    def _branches(self, x: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self._branches(x)
        if self.se is not None:
            out = self.se(out)
        identity = x if self.shortcut else self.short(x)
        return F.relu(out + identity)


class BasicBlock(_ResidualBlock):
    """Two 3x3 conv+norm units (stride on ``branch2a``): [B, ch_in, H, W] -> [B, ch_out, H/s, W/s].

    shortcut: True adds the input as is; False adds the projection ``short``.
    """

    expansion = 1

    def __init__(
        self,
        ch_in: int,
        ch_out: int,
        stride: int,
        shortcut: bool,
        variant: str = "b",
        groups: int = 1,
        base_width: int = 64,
        std_senet: bool = False,
        lr_mult: float = 1.0,
        **norm_kw,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"ResNet basic blocks (depth 18/34) need groups=1 and base_width=64, "
                f"got groups={groups}, base_width={base_width}"
            )
        kw = dict(lr_mult=lr_mult, **norm_kw)
        self.branch2a = ResConvNorm(ch_in, ch_out, 3, stride=stride, act="relu", **kw)
        self.branch2b = ResConvNorm(ch_out, ch_out, 3, **kw)
        self._add_tail(ch_in, ch_out, stride, shortcut, variant, std_senet, lr_mult, norm_kw)

    def _branches(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.branch2b(self.branch2a(x))


class BottleNeck(_ResidualBlock):
    """1x1 -> 3x3 (grouped) -> 1x1 conv+norm units: [B, ch_in, H, W] -> [B, 4 ch_out, H/s, W/s].

    Inner width = int(ch_out * base_width / 64) * groups (ResNeXt 64x4d: res2 is 256 wide with
    4 channels per group). Variant a strides the 1x1 ``branch2a``, the others the 3x3 ``branch2b``.
    """

    expansion = 4

    def __init__(
        self,
        ch_in: int,
        ch_out: int,
        stride: int,
        shortcut: bool,
        variant: str = "b",
        groups: int = 1,
        base_width: int = 64,
        std_senet: bool = False,
        lr_mult: float = 1.0,
        **norm_kw,
    ):
        super().__init__()
        stride_a, stride_b = (stride, 1) if variant == "a" else (1, stride)
        width = int(ch_out * (base_width / 64.0)) * groups
        out = ch_out * self.expansion
        kw = dict(lr_mult=lr_mult, **norm_kw)
        self.branch2a = ResConvNorm(ch_in, width, 1, stride=stride_a, act="relu", **kw)
        self.branch2b = ResConvNorm(
            width, width, 3, stride=stride_b, groups=groups, act="relu", **kw
        )
        self.branch2c = ResConvNorm(width, out, 1, **kw)
        self._add_tail(ch_in, out, stride, shortcut, variant, std_senet, lr_mult, norm_kw)

    def _branches(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.branch2c(self.branch2b(self.branch2a(x)))


class ResStage(nn.Layer):
    """One stage: ``count`` blocks named ``res{n}a``, ``res{n}b``, ... (see ``_block_name``).

    The first block has stride ``stride`` and the projection shortcut; the others keep the
    shape. x: [B, ch_in, H, W] -> [B, out_channels, H/stride, W/stride].

    Also the building block of a C4 ``Res5Head``: ``ResStage("res5", 1024, 3, bottleneck=True,
    stride=2)`` is res5 of a depth-50, variant-b ResNet.
    """

    def __init__(
        self,
        name: str,
        ch_in: int,
        count: int,
        bottleneck: bool,
        stride: int = 2,
        ch_out: int | None = None,
        variant: str = "b",
        groups: int = 1,
        base_width: int = 64,
        std_senet: bool = False,
        lr_mult: float = 1.0,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = True,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        variant = _normalize_variant(variant)
        if ch_out is None:  # stage width from its name: res2 -> 64, ..., res5 -> 512
            known = {resnet_stage_name(i): w for i, w in enumerate(STAGE_WIDTHS)}
            if name not in known:
                raise ValueError(f"ResStage {name!r}: give ch_out (known names: {list(known)})")
            ch_out = known[name]
        block_cls = BottleNeck if bottleneck else BasicBlock
        norm_kw = dict(
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            norm_momentum=norm_momentum,
            norm_eps=norm_eps,
        )
        self.blocks: list[nn.Layer] = []
        for j in range(count):
            block = block_cls(
                ch_in,
                ch_out,
                stride if j == 0 else 1,
                shortcut=j > 0,
                variant=variant,
                groups=groups,
                base_width=base_width,
                std_senet=std_senet,
                lr_mult=lr_mult,
                **norm_kw,
            )
            self.blocks.append(self.add_sublayer(_block_name(name, j, count), block))
            ch_in = ch_out * block_cls.expansion
        self.out_channels = ch_in

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class _Stem(nn.Layer):
    """conv1 (7x7/2, or three 3x3 with the first stride 2) then a 3x3/2 max pool.

    x: [B, 3, H, W] -> [B, C, H/4, W/4], C the last unit's output channels.
    """

    def __init__(self, specs: Sequence[tuple[str, int, int, int, int]], norm_kw: dict):
        super().__init__()
        self.units: list[ResConvNorm] = []
        for name, c_in, c_out, k, s in specs:
            unit = ResConvNorm(c_in, c_out, k, stride=s, act="relu", **norm_kw)
            self.units.append(self.add_sublayer(name, unit))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for unit in self.units:
            x = unit(x)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def _freeze(layer: nn.Layer) -> None:
    for p in layer.parameters():
        p.stop_gradient = True


@register("backbone")
class ResNet(nn.Layer):
    """ResNet / ResNet-vd / ResNeXt backbone.

    forward(image [B, 3, H, W]) -> one map per ``return_idx``: stage i gives
    [B, C_i, H / 2**(i+2), W / 2**(i+2)], C_i = 64 * 2**i (depth 18/34) or 256 * 2**i.

    Args:
        depth: 18, 34, 50, 101 or 152.
        variant: "a", "b", "c", "d" or "vd" (= "d"); see the module docstring.
        ch_in: stem output channels (the deep stem's first two convs have ch_in / 2).
        groups, base_width: ResNeXt cardinality and width per group (64x4d: 64, 4).
        norm_type, norm_decay, freeze_norm: the norm of every conv unit (freeze_norm: fixed
            statistics and affine parameters).
        norm_momentum, norm_eps: running-statistics momentum and epsilon of every norm
            (Paddle's 0.9 / 1e-5; e.g. 0.99 / 1e-3 for a Keras-trained recipe).
        freeze_at: the stem and stages 0..freeze_at get no gradient; -1 freezes nothing.
        return_idx: stages (0..num_stages-1) whose outputs are returned.
        num_stages: stages built (3 for C4 detectors, whose head holds res5).
        lr_mult_list: learning-rate multiplier of each stage.
        std_senet: squeeze-excitation in every block (SENet).
    """

    __shared__ = ["norm_type"]

    def __init__(
        self,
        depth: int = 50,
        ch_in: int = 64,
        variant: str = "b",
        lr_mult_list: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        groups: int = 1,
        base_width: int = 64,
        norm_type: str = "bn",
        norm_decay: float = 0.0,
        freeze_norm: bool = True,
        freeze_at: int = 0,
        return_idx: Sequence[int] = (0, 1, 2, 3),
        num_stages: int = 4,
        std_senet: bool = False,
        norm_momentum: float = MOMENTUM,
        norm_eps: float = EPS,
    ):
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(
                f"ResNet depth {depth} is not supported "
                f"(known: {', '.join(map(str, RESNET_BLOCKS))})"
            )
        variant = _normalize_variant(variant)
        if not 1 <= num_stages <= 4:
            raise ValueError(f"ResNet num_stages {num_stages} must be within 1..4")
        self.return_idx = sorted(return_idx)
        if not self.return_idx or not set(self.return_idx) <= set(range(num_stages)):
            raise ValueError(
                f"ResNet return_idx {list(return_idx)} must be within 0..{num_stages - 1}"
            )
        if len(lr_mult_list) < num_stages:
            raise ValueError(
                f"ResNet lr_mult_list {list(lr_mult_list)} needs one value per stage ({num_stages})"
            )
        bottleneck = depth >= 50
        if not bottleneck and (groups != 1 or base_width != 64):
            raise ValueError(
                f"ResNet depth {depth} (basic blocks) needs groups=1 and base_width=64"
            )
        self.depth, self.variant, self.freeze_at = depth, variant, freeze_at
        norm_kw = dict(
            norm_type=norm_type,
            norm_decay=norm_decay,
            freeze_norm=freeze_norm,
            norm_momentum=norm_momentum,
            norm_eps=norm_eps,
        )

        if variant in ("c", "d"):
            half = ch_in // 2
            stem = [
                ("conv1_1", 3, half, 3, 2),
                ("conv1_2", half, half, 3, 1),
                ("conv1_3", half, ch_in, 3, 1),
            ]
        else:
            stem = [("res_conv1" if groups > 1 else "conv1", 3, ch_in, 7, 2)]
        self.conv1 = _Stem(stem, norm_kw)

        self.stages: list[ResStage] = []
        channels = ch_in
        for i in range(num_stages):
            name = resnet_stage_name(i)
            stage = ResStage(
                name,
                channels,
                RESNET_BLOCKS[depth][i],
                bottleneck,
                stride=1 if i == 0 else 2,
                variant=variant,
                groups=groups,
                base_width=base_width,
                std_senet=std_senet,
                lr_mult=float(lr_mult_list[i]),
                **norm_kw,
            )
            self.stages.append(self.add_sublayer(name, stage))
            channels = stage.out_channels

        if freeze_at >= 0:
            _freeze(self.conv1)
            for stage in self.stages[: freeze_at + 1]:
                _freeze(stage)

        self.out_channels = [self.stages[i].out_channels for i in self.return_idx]
        self.out_strides = [4 * 2**i for i in self.return_idx]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        x = self.conv1(image)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.freeze_at:
                x.stop_gradient = True
            if i in self.return_idx:
                outs.append(x)
            if i == self.return_idx[-1]:
                break  # deeper stages are not needed
        return outs
