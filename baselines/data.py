"""The 4-channel training data of the baseline GANs: reading, resizing, batch order.

Pairs from a data folder become float tensors (N, 4, L, L) in [-1, 1] (RGB + mask, as the
authors' DCGAN-4ch/ProGAN-4ch/FastGAN-4ch loaders); batches are drawn from (seed,
iteration) alone, so a resumed run needs no loader state (`baselines/common.py::train`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from singanseg.io import InputError, list_pairs, read_pair

NUM_CHANNELS = 4  # RGB + mask, as the authors' `--nc 4` / `--img_channels 4` (paper.md section 6)


def to_4ch(image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) + {0,255} mask (H, W) -> float (4, H, W) in [-1, 1].

    As `DCGAN-4ch/custom_data.py::make_4_chs_img` + `np2torch`: mask binarised at 127
    (read_mask did that), concatenated as the 4th channel, x/255 then (x - 0.5) * 2.
    """
    x = np.concatenate([image, mask[:, :, None]], axis=2).astype(np.float32) / 255.0
    return (torch.from_numpy(x).permute(2, 0, 1) - 0.5) * 2


def resize_4ch(x: torch.Tensor, size: int, mode: str = "squash") -> torch.Tensor:
    """Resize (..., 4, H, W) to (..., 4, size, size): bilinear with antialias, as torchvision's
    tensor `Resize` the authors applied to the 4-channel tensor (DCGAN-4ch/train_4ch.py)."""
    batched = x.dim() == 4
    x = x if batched else x[None]
    if mode == "center_crop":
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size]
    elif mode == "squash":
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    else:
        raise ValueError(f"resize: unknown mode {mode!r} (known: squash, center_crop)")
    x = x.clamp(-1, 1)  # float rounding of the filter can step a hair outside [-1, 1]
    return x if batched else x[0]


def load_dataset(
    data_dir: str | Path,
    resolution: int,
    num_images: int | None = None,
    resize: str = "squash",
    min_images: int = 1,
) -> tuple[torch.Tensor, list[str]]:
    """4-channel training tensors (N, 4, resolution, resolution) in [-1, 1] and their ids.

    `num_images` keeps the first k ids in natural-sort order (the paper's FastGAN runs used the
    first k in {5, ..., 50}, paper.md section 6). Images smaller than `resolution` on
    either side are an error: upsampling would invent detail the GAN then learns
    (docs/deviations/baselines.md).
    """
    pairs = list_pairs(data_dir)
    if num_images is not None:
        if num_images < 1:
            raise InputError(f"--num-images: must be at least 1, got {num_images}")
        if num_images > len(pairs):
            raise InputError(
                f"{data_dir}: --num-images {num_images} asks for more pairs than the folder holds ({len(pairs)})"
            )
        pairs = pairs[:num_images]
    if len(pairs) < min_images:
        raise InputError(
            f"{data_dir}: {len(pairs)} training pair(s) but the batch size is {min_images}; "
            f"use more images or a smaller batch_size"
        )
    out = torch.empty(len(pairs), NUM_CHANNELS, resolution, resolution)
    for i, pair in enumerate(pairs):
        image, mask, _ = read_pair(pair)
        h, w = mask.shape
        if min(h, w) < resolution:
            raise InputError(
                f"{pair.image}: image is {w}x{h} (WxH), smaller than the GAN's resolution "
                f"{resolution}; use larger images or a smaller resolution"
            )
        out[i] = resize_4ch(to_4ch(image, mask), resolution, resize)
    return out, [p.id for p in pairs]


def random_hflip(x: torch.Tensor, rng: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each sample left-right with probability p (`transforms.RandomHorizontalFlip`)."""
    flip = (torch.rand(x.shape[0], generator=rng) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def batch_indices(seed: int, iteration: int, num_images: int, batch_size: int) -> torch.Tensor:
    """Indices of the batch at `iteration`: epochs of a fresh random permutation each.

    As a `DataLoader(shuffle=True)`, but drop_last: every batch is full (see
    docs/deviations/baselines.md). The permutation depends only on (seed, epoch), so a
    resumed run draws the same batches without any loader state to save.
    """
    per_epoch = num_images // batch_size
    epoch, k = divmod(iteration, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(num_images, generator=g)
    return perm[k * batch_size : (k + 1) * batch_size]


def stream_indices(seed: int, iteration: int, num_images: int, batch_size: int) -> torch.Tensor:
    """Batch `iteration` of an endless stream of seeded permutations (an infinite sampler).

    Positions run on across epochs, so a batch may be larger than the data set; like
    `batch_indices`, it depends only on (seed, iteration): resuming needs no loader state.
    """
    out = []
    for pos in range(iteration * batch_size, (iteration + 1) * batch_size):
        epoch, k = divmod(pos, num_images)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        out.append(torch.randperm(num_images, generator=g)[k])
    return torch.stack(out)
