"""FastGAN-4ch networks: generator, self-supervised discriminator and their building blocks.

Follows the authors' `vlbthambawita/singan-seg-polyp: FastGAN-4ch/models.py` (blocks,
Generator, Discriminator, SimpleDecoder, weights_init) and `train_4ch.py` (the quadrant
crop and the real inputs of D); GPL-3.0, read for facts, our own code. Config, training
and sampling are in `baselines/fastgan.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NC = 4  # RGB + mask (train_4ch.py --nc 4)
SMALL = 128  # the second generator output and the decoders' output side (models.py)
# Channel multipliers per feature-map side (models.py: nfc_multi of Generator / Discriminator)
G_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
D_MULT = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25}


# ---------------------------------------------------------------- building blocks

NoiseFn = Callable[[int, int, int, torch.device], torch.Tensor]  # (batch, h, w, device) -> (batch, 1, h, w)


def _global_noise(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    return torch.randn(b, 1, h, w, device=device)


def _sn(module: nn.Module) -> nn.Module:
    # models.py weights_init draws conv weights from N(0, 0.02); done before wrapping so that
    # the spectral norm's power iteration starts from the initialised weight.
    nn.init.normal_(module.weight, 0.0, 0.02)
    return spectral_norm(module)


def conv(cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> nn.Module:
    return _sn(nn.Conv2d(cin, cout, k, s, p, bias=False))


class BatchNorm(nn.BatchNorm2d):
    """BN with N(1, 0.02) weights (models.py weights_init) and a switch for sampling with
    per-sample statistics while the module is in eval mode (see FastGANConfig.sample_bn):
    the statistics then come from the batch, and no running statistic is updated."""

    def __init__(self, ch: int):
        super().__init__(ch)
        nn.init.normal_(self.weight, 1.0, 0.02)
        nn.init.zeros_(self.bias)
        self.use_batch_stats = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.use_batch_stats:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)


class GLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)  # first half * sigmoid(second half), as models.py GLU


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class NoiseInjection(nn.Module):
    """feat + w * N(0, 1) noise of shape (B, 1, H, W); w starts at 0 (models.py)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, feat: torch.Tensor, noise: NoiseFn) -> torch.Tensor:
        b, _, h, w = feat.shape
        return feat + self.weight * noise(b, h, w, feat.device)


class SEBlock(nn.Module):
    """Skip-layer excitation: a 4x4 summary of a low-resolution map gates a high-resolution one."""

    def __init__(self, ch_in: int, ch_out: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), conv(ch_in, ch_out, 4), Swish(), conv(ch_out, ch_out, 1), nn.Sigmoid()
        )

    def forward(self, feat_small: torch.Tensor, feat_big: torch.Tensor) -> torch.Tensor:
        return feat_big * self.main(feat_small)


class UpBlock(nn.Module):
    """Nearest x2, conv3x3 to 2*out, [noise], BN, GLU; `comp` repeats conv/noise/BN/GLU once
    more (models.py UpBlock / UpBlockComp)."""

    def __init__(self, cin: int, cout: int, comp: bool):
        super().__init__()
        n = 2 if comp else 1
        self.convs = nn.ModuleList([conv(cin if i == 0 else cout, cout * 2, 3, 1, 1) for i in range(n)])
        self.noises = nn.ModuleList([NoiseInjection() for _ in range(n)] if comp else [])
        self.norms = nn.ModuleList([BatchNorm(cout * 2) for _ in range(n)])

    def forward(self, x: torch.Tensor, noise: NoiseFn) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        for i, c in enumerate(self.convs):
            x = c(x)
            if self.noises:
                x = self.noises[i](x, noise)
            x = F.glu(self.norms[i](x), dim=1)
        return x


class Generator(nn.Module):
    """z (B, nz) -> [full-size image (B, 4, 256, 256), small image (B, 4, 128, 128)]."""

    def __init__(self, ngf: int = 64, nz: int = 256, nc: int = NC):
        super().__init__()
        f = {k: int(v * ngf) for k, v in G_MULT.items()}
        self.nz = nz
        self.init = nn.Sequential(_sn(nn.ConvTranspose2d(nz, f[4] * 2, 4, 1, 0, bias=False)), BatchNorm(f[4] * 2), GLU())
        self.feat_8 = UpBlock(f[4], f[8], comp=True)
        self.feat_16 = UpBlock(f[8], f[16], comp=False)
        self.feat_32 = UpBlock(f[16], f[32], comp=True)
        self.feat_64 = UpBlock(f[32], f[64], comp=False)
        self.feat_128 = UpBlock(f[64], f[128], comp=True)
        self.feat_256 = UpBlock(f[128], f[256], comp=False)
        self.se_64, self.se_128, self.se_256 = SEBlock(f[4], f[64]), SEBlock(f[8], f[128]), SEBlock(f[16], f[256])
        self.to_128 = conv(f[128], nc, 1)
        self.to_big = conv(f[256], nc, 3, 1, 1)

    def forward(self, z: torch.Tensor, noise: NoiseFn = _global_noise) -> list[torch.Tensor]:
        feat_4 = self.init(z.view(z.shape[0], -1, 1, 1))
        feat_8 = self.feat_8(feat_4, noise)
        feat_16 = self.feat_16(feat_8, noise)
        feat_32 = self.feat_32(feat_16, noise)
        feat_64 = self.se_64(feat_4, self.feat_64(feat_32, noise))
        feat_128 = self.se_128(feat_8, self.feat_128(feat_64, noise))
        feat_256 = self.se_256(feat_16, self.feat_256(feat_128, noise))
        # No tanh at 256 px: models.py applies tanh only on its 1024 branch (faithful).
        return [self.to_big(feat_256), self.to_128(feat_128)]


def _down(cin: int, cout: int) -> nn.Sequential:  # models.py DownBlock
    return nn.Sequential(conv(cin, cout, 4, 2, 1), BatchNorm(cout), nn.LeakyReLU(0.2))


class DownBlockComp(nn.Module):
    """Mean of a strided-conv path and an avg-pool + 1x1 path (models.py DownBlockComp)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(_down(cin, cout), conv(cout, cout, 3, 1, 1), BatchNorm(cout), nn.LeakyReLU(0.2))
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), conv(cin, cout, 1), BatchNorm(cout), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class SimpleDecoder(nn.Module):
    """Features -> adaptive 8x8 -> four nearest-x2 up blocks -> (B, nc, 128, 128), tanh."""

    def __init__(self, nfc_in: int, nc: int = NC, base: int = 32):
        super().__init__()
        f = {k: int(v * base) for k, v in G_MULT.items()}
        ups = [UpBlock(a, b, comp=False) for a, b in ((nfc_in, f[16]), (f[16], f[32]), (f[32], f[64]), (f[64], f[128]))]
        self.pool = nn.AdaptiveAvgPool2d(8)
        self.ups = nn.ModuleList(ups)
        self.out = conv(f[128], nc, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        for up in self.ups:
            x = up(x, _global_noise)  # no noise module in these blocks; the function is unused
        return torch.tanh(self.out(x))


def crop_part(x: torch.Tensor, part: int) -> torch.Tensor:
    """Quadrant `part` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right), train_4ch.py."""
    h, w = x.shape[2] // 2, x.shape[3] // 2
    r, c = divmod(part, 2)
    return x[:, :, r * h : (r + 1) * h, c * w : (c + 1) * w]


class Discriminator(nn.Module):
    """(big (B, nc, 256, 256), small (B, nc, 128, 128)) -> logits (2 * B * 25,) [+ 3 reconstructions]."""

    def __init__(self, ndf: int = 64, nc: int = NC, decoder_nf: int = 32):
        super().__init__()
        f = {k: int(v * ndf) for k, v in D_MULT.items()}
        # At 256 px the first layer keeps the size (models.py: conv3x3 stride 1 for im_size 256).
        self.down_from_big = nn.Sequential(conv(nc, f[512], 3, 1, 1), nn.LeakyReLU(0.2))
        self.down_4, self.down_8 = DownBlockComp(f[512], f[256]), DownBlockComp(f[256], f[128])
        self.down_16, self.down_32 = DownBlockComp(f[128], f[64]), DownBlockComp(f[64], f[32])
        self.down_64 = DownBlockComp(f[32], f[16])
        self.rf_big = nn.Sequential(conv(f[16], f[8], 1), BatchNorm(f[8]), nn.LeakyReLU(0.2), conv(f[8], 1, 4))
        self.se_2_16, self.se_4_32, self.se_8_64 = SEBlock(f[512], f[64]), SEBlock(f[256], f[32]), SEBlock(f[128], f[16])
        self.down_from_small = nn.Sequential(
            conv(nc, f[256], 4, 2, 1), nn.LeakyReLU(0.2), _down(f[256], f[128]), _down(f[128], f[64]), _down(f[64], f[32])
        )
        self.rf_small = conv(f[32], 1, 4)
        self.decoder_big = SimpleDecoder(f[16], nc, decoder_nf)
        self.decoder_part = SimpleDecoder(f[32], nc, decoder_nf)
        self.decoder_small = SimpleDecoder(f[32], nc, decoder_nf)

    def forward(self, big: torch.Tensor, small: torch.Tensor, part: int | None = None):
        feat_2 = self.down_from_big(big)
        feat_4 = self.down_4(feat_2)
        feat_8 = self.down_8(feat_4)
        feat_16 = self.se_2_16(feat_2, self.down_16(feat_8))
        feat_32 = self.se_4_32(feat_4, self.down_32(feat_16))
        feat_last = self.se_8_64(feat_8, self.down_64(feat_32))
        feat_small = self.down_from_small(small)
        logits = torch.cat([self.rf_big(feat_last).view(-1), self.rf_small(feat_small).view(-1)])
        if part is None:
            return logits
        recs = [self.decoder_big(feat_last), self.decoder_small(feat_small), self.decoder_part(crop_part(feat_32, part))]
        return logits, recs


def real_pair(x: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A real batch as the two D inputs: F.interpolate to `size` and 128, nearest (models.py)."""
    return F.interpolate(x, size=size), F.interpolate(x, size=SMALL)
