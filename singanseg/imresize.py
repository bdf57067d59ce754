"""The MATLAB-style bicubic, antialiased resize that builds SinGAN's pyramid.

The authors resize with `SinGAN/imresize.py` (a port of assafshocher/resizer; anchors.md
s2.1: "This is *not* F.interpolate"): per dimension, a cubic kernel (a = -0.5), stretched
by 1/scale when downscaling (antialiasing), over 4/scale + 2 taps, weights normalised to
sum 1, out-of-range taps mirrored. Every call goes through uint8: `torch2uint8` truncates
255 * (x + 1) / 2, the resize runs in float64 on those integers, and `np2torch` maps back
to [-1, 1] with a clamp.

Two modes (SinGANConfig.resize; docs/deviations/singan.md):
- `reference`: the same arithmetic, including the uint8 truncation and one quirk of the
  reference's tap indices (below), so that results are bit-identical (tested).
- `torch` (default): the same kernel and taps as dense float32 matrices applied with two
  matmuls on (N, C, H, W) tensors; no uint8 round trip. It differs from `reference` by the
  quantisation only (< 1/127.5 per pixel per call).

The quirk: `contributions` casts tap positions to `np.uint` before computing the weights,
so a tap left of the image (position -1, -2) becomes ~1.8e19, its weight is exactly 0 and
the remaining taps are renormalised; only taps right of the image are mirrored. Both modes
keep this, because it defines the kernel the authors' pyramid was built with.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

KERNEL_WIDTH = 4.0  # cubic kernel support (imresize.py: "cubic": (cubic, 4.0))


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's imresize 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (1 < ax) & (ax <= 2)
    )


def output_length(length: int, scale: float) -> int:
    """ceil(length * scale), as `fix_scale_and_size` computes the output shape."""
    return int(math.ceil(length * scale))


@lru_cache(maxsize=256)
def contributions(
    in_length: int, out_length: int, scale: float, antialias: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel: the input indices it reads and their weights, (out, taps) each."""
    if antialias:
        width = KERNEL_WIDTH / scale

        def kernel(x):
            return scale * cubic(scale * x)
    else:
        width, kernel = KERNEL_WIDTH, cubic
    out_coords = np.arange(1, out_length + 1)
    # pixel centres: p_new - 0.5 = (p_old - 0.5) / scale, in 1-based positions
    match = 1.0 * out_coords / scale + 0.5 * (1 - 1.0 / scale)
    left = np.floor(match - width / 2)
    taps = int(np.ceil(width) + 2)
    pos = (left[:, None] + np.arange(taps) - 1).astype(np.int64)  # 0-based input index
    weights = np.where(
        pos >= 0, kernel(1.0 * match[:, None] - pos.clip(min=0) - 1), 0.0
    )  # the uint quirk
    sums = weights.sum(axis=1)
    sums[sums == 0] = 1.0
    weights = 1.0 * weights / sums[:, None]
    mirror = np.concatenate((np.arange(in_length), np.arange(in_length - 1, -1, -1)))
    index = np.where(pos >= 0, mirror[np.mod(pos.clip(min=0), 2 * in_length)], 0)
    keep = np.nonzero(np.any(weights, axis=0))[0]
    weights, index = weights[:, keep], index[:, keep]
    weights.setflags(write=False)
    index.setflags(write=False)
    return weights, index


def _resize_dim_np(im: np.ndarray, dim: int, weights: np.ndarray, index: np.ndarray) -> np.ndarray:
    # Gather the taps (taps, out, ...), weight them and add them up tap by tap, in float64.
    moved = np.swapaxes(im, dim, 0)
    w = weights.T.reshape(weights.T.shape + (1,) * (im.ndim - 1))
    out = np.sum(moved[index.T] * w, axis=0)
    return np.swapaxes(out, dim, 0)


def _quantise(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (C, H, W) -> uint8 (H, W, C) by truncation (imresize.py::torch2uint8)."""
    return (255 * ((x.permute(1, 2, 0) + 1) / 2).clamp(0, 1)).cpu().numpy().astype(np.uint8)


def _dequantise(im: np.ndarray) -> torch.Tensor:
    """float64 (H, W, C) in 0..255 -> float32 (C, H, W) in [-1, 1] (imresize.py::np2torch)."""
    x = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)) / 255).float()
    return ((x - 0.5) * 2).clamp(-1, 1)


def imresize_reference(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bit-for-bit the authors' `imresize(x, scale, opt)` for (N, C, H, W) in [-1, 1]."""
    outs = []
    for sample in x.detach():
        im = _quantise(sample)
        h, w = im.shape[:2]
        if scale != 1.0:
            aa = scale < 1
            for dim, length in ((0, h), (1, w)):  # argsort of [s, s, 1]: H first, then W
                weights, index = contributions(
                    length, output_length(length, scale), float(scale), aa
                )
                im = _resize_dim_np(im, dim, weights, index)
        outs.append(_dequantise(np.asarray(im, dtype=np.float64)))
    return torch.stack(outs).to(x.device)


@lru_cache(maxsize=256)
def _matrix(in_length: int, out_length: int, scale: float, antialias: bool) -> torch.Tensor:
    weights, index = contributions(in_length, out_length, scale, antialias)
    m = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_length), index.shape[1]), index.ravel()), weights.ravel())
    return torch.from_numpy(m).float()


def imresize_torch(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The same kernel as float matrices: M_h @ x @ M_w^T on (N, C, H, W), no uint8 round trip."""
    x = x.clamp(-1, 1)  # torch2uint8 clamps through denorm
    if scale == 1.0:
        return x
    h, w = x.shape[-2:]
    aa = scale < 1
    mh = _matrix(h, output_length(h, scale), float(scale), aa).to(x.device, x.dtype)
    mw = _matrix(w, output_length(w, scale), float(scale), aa).to(x.device, x.dtype)
    return torch.matmul(torch.matmul(mh, x), mw.T).clamp(-1, 1)


def imresize(x: torch.Tensor, scale: float, mode: str = "torch") -> torch.Tensor:
    """Resize (N, C, H, W) in [-1, 1] by `scale` to ceil(H*scale) x ceil(W*scale)."""
    if mode == "reference":
        return imresize_reference(x, scale)
    if mode == "torch":
        return imresize_torch(x, scale)
    raise ValueError(f"resize: unknown mode {mode!r} (known: 'reference', 'torch')")
