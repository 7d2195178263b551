"""NumPy references shared by the pyramid-neck tests (convolution, resizing, pooling)."""

from __future__ import annotations

import math

import numpy as np
import paddle


def conv_ref(x, w, b=None, stride=1, groups=1):
    """'same' convolution (padding (k-1)//2): x [B, Ci, H, W], w [Co, Ci/groups, k, k]."""
    k = w.shape[2]
    pad = (k - 1) // 2
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    h = (x.shape[2] + 2 * pad - k) // stride + 1
    wd = (x.shape[3] + 2 * pad - k) // stride + 1
    out = np.zeros([x.shape[0], w.shape[0], h, wd])
    ci, co = x.shape[1] // groups, w.shape[0] // groups
    for g in range(groups):
        xs = xp[:, g * ci : (g + 1) * ci]
        for i in range(k):
            for j in range(k):
                patch = xs[:, :, i : i + stride * h : stride, j : j + stride * wd : stride]
                out[:, g * co : (g + 1) * co] += np.einsum(
                    "bchw,oc->bohw", patch, w[g * co : (g + 1) * co, :, i, j]
                )
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def nearest_ref(x, h, w):
    """Paddle's nearest resize (align_corners False): source index floor(i * in / out)."""
    rows = np.floor(np.arange(h) * x.shape[2] / h).astype(int)
    cols = np.floor(np.arange(w) * x.shape[3] / w).astype(int)
    return x[:, :, rows][:, :, :, cols]


def bilinear_align_corners_ref(x, h, w):
    """Bilinear resize with align_corners=True: source coordinate i * (in - 1) / (out - 1)."""

    def axis(n_in, n_out):
        if n_out == 1:
            return np.zeros(1), np.zeros(1, int), np.zeros(1, int)
        src = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return src - lo, lo, hi

    fy, y0, y1 = axis(x.shape[2], h)
    fx, x0, x1 = axis(x.shape[3], w)
    top = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]  # [B, C, h, W]
    return top[:, :, :, x0] * (1 - fx) + top[:, :, :, x1] * fx


def maxpool3s2_ref(x):
    """3x3 stride-2 max pool with padding 1 (-inf padding): H -> ceil(H / 2)."""
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)], constant_values=-np.inf)
    h, w = math.ceil(x.shape[2] / 2), math.ceil(x.shape[3] / 2)
    out = np.full(x.shape[:2] + (h, w), -np.inf)
    for i in range(3):
        for j in range(3):
            out = np.maximum(out, xp[:, :, i : i + 2 * h : 2, j : j + 2 * w : 2])
    return out


def odd_feats(in_channels, strides=(8, 16, 32), size=(97, 131), batch=2, seed=0):
    """Backbone-like maps of an H x W image: stride s -> ceil(H/s) x ceil(W/s)."""
    rng = np.random.default_rng(seed)
    return [
        paddle.to_tensor(
            rng.normal(size=(batch, c, math.ceil(size[0] / s), math.ceil(size[1] / s))).astype(
                "float32"
            )
        )
        for c, s in zip(in_channels, strides)
    ]


def set_value(param, value):
    param.set_value(np.asarray(value, dtype="float32").reshape(param.shape))
