"""Differentiable augmentation (DiffAugment; Zhao et al., NeurIPS 2020) for 4-channel data.

The same random transforms as `mit-han-lab/data-efficient-gans: DiffAugment_pytorch.py`
and FastGAN's `diffaug.py` (the copy in `singan-seg-polyp: FastGAN-4ch/`): per-sample
brightness shift in [-0.5, 0.5), saturation scale in [0, 2) around the channel mean,
contrast scale in [0.5, 1.5) around the image mean, integer translation by up to
`ratio` of the side (zero fill) and cutout of a `ratio`-sized square (zero fill).
Written here from that description (../shared/docs/anchors.md section 1.1), not copied.

4-channel quirk (anchors.md 1.1, pitfall 2): the authors apply the colour transforms to
all four channels, so the mask channel is shifted by the brightness jitter and mixed into
the saturation and contrast means. That is the paper's behaviour and our default;
`mask_aware=True` applies the colour transforms to the RGB channels only. Geometric
transforms (translation, cutout) always move image and mask together, as in the
reference, so that the pair stays aligned.
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")
RGB = 3  # channels 0..2 are the image, channel 3 the mask (paper.md section 6)


def _draw_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    # Draws come from `generator` where given (a CPU generator whose state the trainer
    # checkpoints, baselines/common.py) and are moved to x's device afterwards.
    return generator.device if generator is not None else x.device


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One U[0, 1) draw per sample, shaped to broadcast over (C, H, W)."""
    u = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=_draw_device(x, generator), generator=generator)
    return u.to(x.device)


def rand_brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x + (_uniform(x, generator) - 0.5)


def rand_saturation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    # The mean is over the channel axis: with 4 channels the mask takes part (quirk 2).
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, generator) * 2) + mean


def rand_contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def _randint(low: int, high: int, n: int, device, generator) -> torch.Tensor:
    draw_on = generator.device if generator is not None else device
    return torch.randint(low, high, (n,), device=draw_on, generator=generator).to(device)


def rand_translation(x: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each sample by an integer (dy, dx) in [-s, s] with s = round(side * ratio); zero fill.

    out[b, :, i, j] = x[b, :, i + dy_b, j + dx_b] where that is inside the image, else 0,
    which is what the reference's padded-index formulation computes.
    """
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _randint(-sh, sh + 1, b, x.device, generator)
    dx = _randint(-sw, sw + 1, b, x.device, generator)
    rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]  # (B, H) source rows
    cols = torch.arange(w, device=x.device)[None, :] + dx[:, None]  # (B, W) source cols
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None]
    src = x[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (B, H, W, C)
    return src.permute(0, 3, 1, 2) * valid[:, None].to(x.dtype)


def rand_cutout(x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a (side * ratio)-sized rectangle per sample, its centre uniform over the image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Centre range as in the reference: [0, side + (1 - size % 2)), the box clipped at the border.
    cy = _randint(0, h + (1 - ch % 2), b, x.device, generator)
    cx = _randint(0, w + (1 - cw % 2), b, x.device, generator)
    top, left = cy - ch // 2, cx - cw // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    in_r = (r >= top[:, None]) & (r < (top + ch)[:, None])
    in_c = (c >= left[:, None]) & (c < (left + cw)[:, None])
    keep = ~(in_r[:, :, None] & in_c[:, None, :])
    return x * keep[:, None].to(x.dtype)


def _color(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    for f in (rand_brightness, rand_saturation, rand_contrast):
        x = f(x, generator=generator)
    return x


def parse_policy(policy: str, where: str = "policy") -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); unknown names raise ValueError naming `where`."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    for p in parts:
        if p not in POLICIES:
            raise ValueError(f"{where}: unknown DiffAugment policy {p!r} (known: {', '.join(POLICIES)})")
    return parts


def DiffAugment(  # noqa: N802 - the reference's name
    x: torch.Tensor,
    policy: str = "color,translation",
    mask_aware: bool = False,
    generator: torch.Generator | None = None,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> torch.Tensor:
    """Apply `policy` (comma-separated subset of color, translation, cutout) to NCHW `x`.

    `policy='color,translation'` is FastGAN-4ch's (`train_4ch.py: policy`); the DiffAugment
    README recommends adding `cutout` for very small datasets (anchors.md 1.1).
    With `mask_aware` and 4 channels, colour acts on channels 0..2 only.
    """
    for p in parse_policy(policy):
        if p == "color":
            if mask_aware and x.size(1) > RGB:
                x = torch.cat([_color(x[:, :RGB], generator), x[:, RGB:]], dim=1)
            else:
                x = _color(x, generator)
        elif p == "translation":
            x = rand_translation(x, translation_ratio, generator=generator)
        else:
            x = rand_cutout(x, cutout_ratio, generator=generator)
    return x.contiguous()
