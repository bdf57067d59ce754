"""Input validation, the 4-channel input tensor and the scale pyramid.

The authors train on an RGBA PNG whose alpha is the binary mask (paper.md s1; s9 recipe:
mask thresholded at 127 -> 0/255 in the alpha channel). `read_image` maps uint8 to
[-1, 1] through float64 / 255 (functions.py::np2torch). The pyramid follows
functions.py::adjust_scales2image and creat_reals_pyramid: the long side is brought to
max_size, the number of scales is chosen so the coarsest short side is about min_size,
and `scale_factor` is recomputed so that it is exactly min_size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from singanseg.config import SinGANConfig
from singanseg.imresize import imresize
from singanseg.io import InputError

log = logging.getLogger(__name__)

# A mask may carry JPEG noise near 0 and 255 (Kvasir-SEG ships JPEG masks); a mask with more
# than this fraction of mid-grey pixels (64..191) is not a binary mask.
MAX_AMBIGUOUS_FRACTION = 0.02


@dataclass(frozen=True)
class ScaleSpec:
    """The pyramid of one input (functions.py::adjust_scales2image)."""

    scale1: float  # first resize: long side to max_size (never up)
    stop_scale: int  # index of the finest scale; stop_scale + 1 scales are trained
    scale_factor: float  # recomputed so the coarsest short side is min_size
    num_scales: int

    @property
    def n_scales(self) -> int:
        return self.stop_scale + 1


def to_rgba(
    image: np.ndarray, mask: np.ndarray, where: str = "input", ambiguous_px: int | None = None
) -> np.ndarray:
    """Validate an RGB uint8 image and a {0,255} mask; return the (H, W, 4) RGBA uint8 input."""
    image, mask = np.asarray(image), np.asarray(mask)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(
            f"{where}: image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}"
        )
    if mask.ndim == 3 and mask.shape[2] in (1, 3):
        mask = mask[..., 0]
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise InputError(f"{where}: mask must be uint8 (H, W), got {mask.dtype} {mask.shape}")
    if mask.shape != image.shape[:2]:
        raise InputError(
            f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but the image is {image.shape[1]}x{image.shape[0]}"
        )
    if ambiguous_px is not None and ambiguous_px > MAX_AMBIGUOUS_FRACTION * mask.size:
        raise InputError(
            f"{where}: mask is not binary ({ambiguous_px} of {mask.size} pixels are mid-grey, more than "
            f"{MAX_AMBIGUOUS_FRACTION:.0%}); give a 0/255 mask"
        )
    values = np.unique(mask)
    if not set(values.tolist()) <= {0, 255}:
        raise InputError(
            f"{where}: mask is not binary (values {values[:6].tolist()}...); binarise it at 127 first (singanseg.io.read_mask does)"
        )
    fg = float((mask == 255).mean())
    if fg == 0.0 or fg == 1.0:
        # Allowed (SinGAN trains on it) but the synthetic masks will be empty/full too.
        log.warning(
            "%s: the mask is %s; the model will learn %s masks",
            where,
            "empty" if fg == 0 else "all foreground",
            "empty" if fg == 0 else "all-foreground",
        )
    return np.concatenate([image, mask[..., None]], axis=2)


def np2torch(rgba: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 4) -> float32 (1, 4, H, W) in [-1, 1] (functions.py::np2torch + norm)."""
    x = torch.from_numpy(rgba[:, :, :, None].transpose((3, 2, 0, 1)) / 255).float()
    return ((x - 0.5) * 2).clamp(-1, 1)


def adjust_scales(height: int, width: int, cfg: SinGANConfig, where: str = "input") -> ScaleSpec:
    """functions.py::adjust_scales2image for an input of height x width."""
    if height * width > cfg.max_input_pixels:
        raise InputError(
            f"{where}: image is {width}x{height} ({height * width / 1e6:.1f} MP), more than max_input_pixels "
            f"({cfg.max_input_pixels / 1e6:.1f} MP); downscale it first or raise max_input_pixels"
        )
    if min(height, width) < cfg.min_size:
        raise InputError(
            f"{where}: image is {width}x{height}, smaller than min_size {cfg.min_size} px on its short side"
        )
    long_side, short_side = max(height, width), min(height, width)
    num_scales = math.ceil(math.log(cfg.min_size / short_side, cfg.scale_factor)) + 1
    scale2stop = math.ceil(math.log(min(cfg.max_size, long_side) / long_side, cfg.scale_factor))
    stop_scale = num_scales - scale2stop
    scale1 = min(cfg.max_size / long_side, 1)
    h1, w1 = math.ceil(height * scale1), math.ceil(width * scale1)
    if stop_scale < 1 or min(h1, w1) < cfg.min_size:
        raise InputError(
            f"{where}: image is {width}x{height}; after resizing its long side to max_size {cfg.max_size} the short side "
            f"({min(h1, w1)} px) leaves no pyramid above min_size {cfg.min_size}"
        )
    scale_factor = math.pow(cfg.min_size / min(h1, w1), 1 / stop_scale)
    return ScaleSpec(
        scale1=scale1, stop_scale=stop_scale, scale_factor=scale_factor, num_scales=num_scales
    )


def build_pyramid(
    rgba: np.ndarray, cfg: SinGANConfig, where: str = "input"
) -> tuple[list[torch.Tensor], ScaleSpec]:
    """The reals, coarsest first, each (1, 4, h, w) in [-1, 1] (functions.py::creat_reals_pyramid)."""
    spec = adjust_scales(rgba.shape[0], rgba.shape[1], cfg, where)
    real = imresize(np2torch(rgba), spec.scale1, cfg.resize)
    reals = [
        imresize(real, math.pow(spec.scale_factor, spec.stop_scale - i), cfg.resize)
        for i in range(spec.stop_scale + 1)
    ]
    return reals, spec
