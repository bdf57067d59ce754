"""Sampling with gen_start_scale and the mask post-processing (paper.md s1 "Sampling").

Follows manipulate.py::SinGAN_generate_clean: scales below `gen_start_scale` use the fixed
reconstruction noise Z_opt, the others fresh noise (one channel expanded at the coarsest
scale); each scale's input is the previous output resized by 1/scale_factor, cropped to the
scale's real size and zero-padded. gen_start_scale = 0 is what every experiment of the
paper used (paper.md s1; the package's default is 5); gen_start_scale = number of scales
replays the reconstruction of the training pair.

Samples are drawn in batches (the frozen generators are in eval mode, so samples do not
interact); the random stream therefore differs from the reference's one-at-a-time loop,
the distribution does not.

Output, as the reference saves it with plt.imsave (which truncates x * 255 to uint8): the
image = channels 0-2 of (x + 1) / 2 clipped to [0, 1]; the mask = channel 3, thresholded
> 0.5 to {0, 255} with post-processing, else kept as a soft grayscale mask (the reference
then saves it through a colormap; we never do, paper.md s9).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from singanseg.errors import UserError
from singanseg.imresize import imresize
from singanseg.io import check_plain_name, write_png
from singanseg.training import pad

MASK_THRESHOLD = 0.5  # manipulate.py::SinGAN_generate_clean: (mask > 0.5) * 255


class SampleError(UserError):
    """Bad sampling request (e.g. gen_start_scale out of range)."""


@torch.no_grad()
def generate(
    model,
    num: int,
    gen_start_scale: int = 0,
    gen: torch.Generator | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """`num` samples (num, 4, H, W) in [-1, 1] from a trained model (singanseg.saved_model.SinGANSeg)."""
    n_scales = len(model.Gs)
    if not 0 <= gen_start_scale <= n_scales:
        raise SampleError(
            f"gen_start_scale {gen_start_scale} is out of range for this model: 0..{n_scales} "
            f"(0 = most random, {n_scales} = the reconstruction of the training pair)"
        )
    if num < 1:
        raise SampleError(f"num: must be >= 1, got {num}")
    cfg, p = model.config, model.config.pad
    dev = model.reals[0].device  # noise is drawn on the CPU generator (same samples on any device)
    out = []
    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        I_prev = None
        for n, (G, Z_opt, amp, real) in enumerate(
            zip(model.Gs, model.Zs, model.noise_amps, model.reals, strict=True)
        ):
            h, w = real.shape[2:]
            if n < gen_start_scale:
                z = Z_opt.expand(b, -1, -1, -1)
            elif n == 0:
                z = pad(torch.randn(b, 1, h, w, generator=gen).to(dev).expand(b, cfg.nc_z, h, w), p)
            else:
                z = pad(torch.randn(b, cfg.nc_z, h, w, generator=gen).to(dev), p)
            if I_prev is None:
                I_prev = torch.zeros(b, cfg.nc_z, h + 2 * p, w + 2 * p, device=dev)
            else:
                I_prev = pad(imresize(I_prev, 1 / model.scale_factor, cfg.resize)[:, :, :h, :w], p)
            I_prev = G(amp * z + I_prev, I_prev)
        out.append(I_prev.cpu())
    return torch.cat(out)


def to_uint8(
    samples: torch.Tensor, mask_post_processing: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(N, 4, H, W) in [-1, 1] -> [(image uint8 (H, W, 3), mask uint8 (H, W))]."""
    x = ((samples + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    pairs = []
    for s in x:
        image = (s[:, :, :3] * 255).astype(np.uint8)
        if mask_post_processing:
            mask = np.where(s[:, :, 3] > MASK_THRESHOLD, 255, 0).astype(np.uint8)
        else:
            mask = (s[:, :, 3] * 255).astype(np.uint8)
        pairs.append((image, mask))
    return pairs


def write_pairs(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    out: str | os.PathLike,
    sample_id: str,
    first: int = 0,
) -> list[tuple[Path, Path]]:
    """Write `images/<id>_<n>.png` and `masks/<id>_<n>.png` under `out` (the data contract)."""
    check_plain_name(sample_id, "sample id")  # `../../X` would write outside `out`
    out = Path(out)
    written = []
    for i, (image, mask) in enumerate(pairs, start=first):
        written.append(
            (
                write_png(out / "images" / f"{sample_id}_{i}.png", image),
                write_png(out / "masks" / f"{sample_id}_{i}.png", mask),
            )
        )
    return written
