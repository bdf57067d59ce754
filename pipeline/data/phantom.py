"""Phantom data: seeded, endoscopy-like image/mask pairs for the offline default.

A smoke-test fixture, never medical data (design notes): a tissue-coloured background with
low-frequency texture and vessels, vignetting like an endoscope's light fall-off, specular
highlights, and a raised polyp whose outline is the mask. The set deliberately covers the
cases the pipeline must handle: several sizes and aspect ratios, masks touching the
border, and one tiny polyp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# (width, height) cycle: landscape like Kvasir-SEG (mostly 4:3-ish), one square, one portrait.
# The short side is at least 256 so that every baseline GAN (FastGAN and Progressive GAN
# train at 256 px, paper.md s6) accepts the images without upsampling.
SIZES = ((320, 256), (352, 288), (288, 288), (384, 288), (256, 320), (400, 300))


@dataclass(frozen=True)
class PhantomCase:
    width: int
    height: int
    touches_border: bool
    tiny: bool


def plan(count: int) -> list[PhantomCase]:
    """Which kinds of pair the generator makes: every 4th touches the border, the 3rd is tiny."""
    cases = []
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        cases.append(PhantomCase(w, h, touches_border=(i % 4 == 1), tiny=(i == 2)))
    return cases


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma, mode="reflect")
    return n / (np.abs(n).max() + 1e-8)


def _polyp_mask(rng: np.random.Generator, case: PhantomCase) -> tuple[np.ndarray, np.ndarray]:
    """A lobed blob (mask) and its height field (for shading)."""
    h, w = case.height, case.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    short = min(h, w)
    if case.tiny:
        r = short * rng.uniform(0.04, 0.06)
    else:
        r = short * rng.uniform(0.16, 0.3)
    if case.touches_border:
        # centre near an edge so the polyp is cut by the frame, as often in Kvasir-SEG
        side = rng.integers(4)
        cy = [r * 0.4, h - r * 0.4, rng.uniform(r, h - r), rng.uniform(r, h - r)][side]
        cx = [rng.uniform(r, w - r), rng.uniform(r, w - r), r * 0.4, w - r * 0.4][side]
    else:
        cy, cx = rng.uniform(r + 2, h - r - 2), rng.uniform(r + 2, w - r - 2)
    angle = np.arctan2(yy - cy, xx - cx)
    # radius modulated by a few low harmonics: an irregular but smooth outline
    radius = np.full_like(angle, r)
    for k in (2, 3, 5):
        radius += r * rng.uniform(0.03, 0.12) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    d = np.hypot(yy - cy, xx - cx) / radius
    mask = d < 1.0
    height = np.clip(1.0 - d**2, 0.0, None)
    return mask, height


def make_pair(seed: int, case: PhantomCase) -> tuple[np.ndarray, np.ndarray]:
    """One phantom pair: uint8 RGB (H, W, 3) and uint8 {0, 255} mask (H, W)."""
    rng = np.random.default_rng(seed)
    h, w = case.height, case.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # mucosa: pink-red with low-frequency texture and darker vessel-like ridges
    base = np.array([0.78, 0.42, 0.36]) + rng.uniform(-0.05, 0.05, 3)
    texture = _smooth_noise(rng, h, w, sigma=max(h, w) / 12)
    vessels = np.abs(_smooth_noise(rng, h, w, sigma=5.0))
    vessels = np.clip(1.0 - vessels * 10.0, 0.0, 1.0) ** 3  # thin ridges near zero crossings
    img = base[None, None, :] * (1.0 + 0.12 * texture[..., None])
    img -= vessels[..., None] * np.array([0.10, 0.16, 0.14])

    # the polyp: slightly paler, shaded by its height (light from the top-left)
    mask, height = _polyp_mask(rng, case)
    gy, gx = np.gradient(height)
    shade = np.clip(0.5 - 3.0 * (gx + gy), 0.0, 1.0)
    polyp = np.array([0.86, 0.55, 0.45]) + rng.uniform(-0.04, 0.04, 3)
    tone = polyp[None, None, :] * (0.8 + 0.4 * shade[..., None])
    soft = ndimage.gaussian_filter(mask.astype(np.float64), 0.8)[..., None]
    img = img * (1.0 - soft) + tone * soft

    # specular highlights: small bright spots, some on the polyp
    for _ in range(rng.integers(3, 8)):
        sy, sx = rng.uniform(0, h), rng.uniform(0, w)
        rad = rng.uniform(1.0, 3.0)
        spot = np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * rad**2))
        img = img + spot[..., None] * 0.9

    # vignetting: the endoscope's light falls off towards the corners
    ry, rx = (yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)
    vignette = np.clip(1.15 - 0.55 * (rx**2 + ry**2), 0.05, 1.0)
    img = img * vignette[..., None]
    img += rng.normal(0, 0.01, img.shape)  # sensor noise

    image = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    return image, np.where(mask, 255, 0).astype(np.uint8)


def generate(count: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`count` phantom pairs with ids phantom_000.. (deterministic for a seed)."""
    return [(f"phantom_{i:03d}", *make_pair(seed * 100_003 + i, case)) for i, case in enumerate(plan(count))]
