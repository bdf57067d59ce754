"""FastGAN (Liu et al., ICLR 2021) on 4-channel RGB+mask data, as SinGAN-Seg ran it.

Facts from `../shared/docs/paper.md` section 6 and `../shared/docs/anchors.md` section 1.1,
read in the authors' copy `vlbthambawita/singan-seg-polyp: FastGAN-4ch/` (models.py,
train_4ch.py, generate_4ch.py; GPL-3.0, read for facts, our own code):

- generator: 4x4 init (ConvT, BN, GLU), up-blocks alternating with and without noise
  injection, skip-layer excitation (SLE) from 4->64, 8->128, 16->256; two outputs, the
  full 256 image and a 128 image; at 256 px the outputs have no tanh (models.py);
- self-supervised discriminator: `down_from_big` (256 input) with SLE, `down_from_small`
  (128 input), logits of both concatenated; for real inputs three SimpleDecoders rebuild
  the whole image, the 128 image and a random quadrant, scored with LPIPS-VGG
  (`baselines/fastgan_lpips.py`);
- losses: random-margin hinge `relu(U*0.2 + 0.8 -/+ pred)`, generator `-pred.mean()`;
- every conv spectral-normalised, weights N(0, 0.02), BN weights N(1, 0.02);
- Adam 2e-4 (0.5, 0.999), batch 8, nz 256, ngf = ndf = 64, EMA 0.999 of G's parameters
  (the EMA generator is what is saved and sampled), 50k iterations, checkpoints every
  5000, horizontal flip, DiffAugment color+translation on real and both fake outputs.

Deviations are named options, documented in docs/deviations/fastgan.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from baselines.common import GANSpec
from baselines.data import random_hflip
from baselines.diffaugment import DiffAugment, parse_policy
from baselines.fastgan_lpips import build_lpips
from singanseg.typed import ConfigError

NC = 4  # RGB + mask (train_4ch.py --nc 4)
SMALL = 128  # the second generator output and the decoders' output side (models.py)
# Channel multipliers per feature-map side (models.py: nfc_multi of Generator / Discriminator)
G_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
D_MULT = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25}


@dataclass(frozen=True)
class FastGANConfig:
    resolution: int = 256  # train_4ch.py --im_size 256 (paper.md s6); the only size built here
    nz: int = 256  # train_4ch.py: nz = 256
    ngf: int = 64  # train_4ch.py: ngf = 64
    ndf: int = 64  # train_4ch.py: ndf = 64
    decoder_nf: int = 32  # models.py SimpleDecoder: widths from a fixed base of 32
    batch_size: int = 8  # train_4ch.py --batch_size 8
    iterations: int = 50_000  # train_4ch.py --iter 50000 (paper.md s6)
    lr: float = 2e-4  # train_4ch.py: nlr = 0.0002, for G and D
    beta1: float = 0.5  # train_4ch.py: nbeta1 = 0.5
    beta2: float = 0.999  # train_4ch.py: Adam betas=(nbeta1, 0.999)
    ema_decay: float = 0.999  # train_4ch.py: avg_p.mul_(0.999).add_(0.001 * p)
    policy: str = "color,translation"  # train_4ch.py: policy; add ",cutout" for very small sets (DiffAugment README)
    hflip: bool = True  # train_4ch.py: transforms.RandomHorizontalFlip()
    checkpoint_every: int = 5_000  # train_4ch.py: save_interval * 50
    # LPIPS-VGG reconstruction loss (train_4ch.py: lpips.LPIPS(net='vgg')): `imagenet` needs
    # torchvision's VGG16 ImageNet weights (torch hub cache or `weights_path`); `random` runs
    # with a randomly initialised backbone and must be asked for (docs/design decisions).
    weights: Literal["imagenet", "random"] = "imagenet"
    weights_path: str | None = None  # a VGG16 state dict (.safetensors or torchvision .pth)
    lpips_size: int = SMALL  # side the reconstructions are scored at; 128 = the decoders' output (paper)
    # Deviation switch (docs/deviations/fastgan.md): False = the authors' behaviour (LPIPS on
    # RGB only; colour augmentation also on the mask); True fixes both.
    mask_aware: bool = False
    # Sampling as generate_4ch.py: G runs without .eval() at batch 1, so BN uses each
    # sample's own statistics (`batch`); `running` uses BN running statistics instead.
    sample_bn: Literal["batch", "running"] = "batch"
    sample_size: int | None = 512  # generate_4ch.py: F.interpolate(g_imgs, 512) (nearest); None = resolution

    def validate(self, where: str) -> None:
        if self.resolution != 256:
            raise ConfigError(f"{where}.resolution: only 256 (the paper's) is implemented, got {self.resolution}")
        for key in ("ngf", "ndf", "decoder_nf"):
            v = getattr(self, key)
            if v < 4 or v % 4:
                raise ConfigError(f"{where}.{key}: must be a multiple of 4 and at least 4 (channel widths are x0.25 .. x16), got {v}")
        for key in ("nz", "batch_size", "iterations", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1, got {getattr(self, key)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"{where}.ema_decay: must be in [0, 1), got {self.ema_decay}")
        if not 16 <= self.lpips_size <= SMALL:
            raise ConfigError(f"{where}.lpips_size: must be in 16..{SMALL} (VGG needs 16 px for its 5 stages), got {self.lpips_size}")
        if self.sample_size is not None and self.sample_size < 1:
            raise ConfigError(f"{where}.sample_size: must be positive or null, got {self.sample_size}")
        try:
            parse_policy(self.policy, f"{where}.policy")
        except ValueError as e:
            raise ConfigError(str(e)) from None


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # 2 CPU cores: the architecture needs 256 px, so the widths, batch and iterations shrink;
    # LPIPS is scored at 32 px and with a random backbone (no weights offline).
    "smoke": {
        "ngf": 8, "ndf": 8, "decoder_nf": 8, "batch_size": 2, "iterations": 4,
        "checkpoint_every": 2, "weights": "random", "lpips_size": 32, "sample_size": None,
    },
}


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


# ---------------------------------------------------------------- training and sampling


def _margin(pred: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """0.8 + U[0, 0.2): the random hinge margin of train_4ch.py (torch.rand_like(pred) * 0.2 + 0.8)."""
    return torch.rand(pred.shape, generator=rng).to(pred.device) * 0.2 + 0.8


class FastGANTrainer:
    """G, D, the EMA generator and both Adams; `step` is one iteration of train_4ch.py."""

    def __init__(self, config: FastGANConfig, device: torch.device):
        self.config, self.device = config, torch.device(device)
        G = Generator(config.ngf, config.nz).to(self.device)
        D = Discriminator(config.ndf, NC, config.decoder_nf).to(self.device)
        G_ema = copy.deepcopy(G).requires_grad_(False)
        self.nets: dict[str, nn.Module] = {"G": G, "D": D, "G_ema": G_ema}
        betas = (config.beta1, config.beta2)
        self.optimizers = {"G": torch.optim.Adam(G.parameters(), config.lr, betas), "D": torch.optim.Adam(D.parameters(), config.lr, betas)}
        self.percept, self.lpips_provenance = build_lpips(config.weights, config.weights_path, self.device)

    def reconstruction_loss(self, recs: list[torch.Tensor], real: torch.Tensor, part: int) -> torch.Tensor:
        """LPIPS of the three decoders against the (augmented) real batch, summed over the batch.

        Targets as train_4ch.py: nearest-resized to the decoders' 128 px, the part target
        cropped first. The authors score RGB only (quirk 1); `mask_aware` adds the mask
        channel, repeated to 3 channels, through the same LPIPS.
        """
        c = self.config
        targets = [F.interpolate(real, size=SMALL), F.interpolate(real, size=SMALL), F.interpolate(crop_part(real, part), size=SMALL)]
        loss = real.new_zeros(())
        for rec, tgt in zip(recs, targets, strict=True):
            if c.lpips_size != SMALL:
                rec, tgt = F.interpolate(rec, size=c.lpips_size, mode="area"), F.interpolate(tgt, size=c.lpips_size, mode="area")
            loss = loss + self.percept(rec[:, :3], tgt[:, :3]).sum()
            if c.mask_aware:
                loss = loss + self.percept(rec[:, 3:].expand(-1, 3, -1, -1), tgt[:, 3:].expand(-1, 3, -1, -1)).sum()
        return loss

    def step(self, real: torch.Tensor, iteration: int, rng: torch.Generator) -> dict[str, float]:
        c, dev = self.config, self.device
        G, D, G_ema = self.nets["G"], self.nets["D"], self.nets["G_ema"]
        G.train()
        D.train()
        if c.hflip:
            real = random_hflip(real, rng)
        z = torch.randn(real.shape[0], c.nz, generator=rng).to(dev)
        fakes = G(z, lambda b, h, w, d: torch.randn(b, 1, h, w, generator=rng).to(d))
        real = DiffAugment(real, c.policy, c.mask_aware, rng)
        # Each output is augmented with its own draw (train_4ch.py: one DiffAugment call per fake).
        fakes = [DiffAugment(f, c.policy, c.mask_aware, rng) for f in fakes]

        D.zero_grad(set_to_none=True)
        part = int(torch.randint(0, 4, (1,), generator=rng))
        pred_real, recs = D(*real_pair(real, c.resolution), part=part)
        loss_real = F.relu(_margin(pred_real, rng) - pred_real).mean()
        loss_rec = self.reconstruction_loss(recs, real, part)
        (loss_real + loss_rec).backward()
        pred_fake = D(fakes[0].detach(), fakes[1].detach())
        loss_fake = F.relu(_margin(pred_fake, rng) + pred_fake).mean()
        loss_fake.backward()
        self.optimizers["D"].step()

        G.zero_grad(set_to_none=True)
        loss_g = -D(*fakes).mean()
        loss_g.backward()
        self.optimizers["G"].step()
        with torch.no_grad():
            for p, e in zip(G.parameters(), G_ema.parameters(), strict=True):
                e.lerp_(p, 1.0 - c.ema_decay)  # e = decay * e + (1 - decay) * p
        return {
            "loss_d_real": loss_real.item(), "loss_d_fake": loss_fake.item(), "loss_rec": loss_rec.item(),
            "loss_g": loss_g.item(), "pred_real": pred_real.mean().item(),
        }

    def sampler(self) -> tuple[nn.Module, dict[str, Any]]:
        """The EMA generator for sampling: EMA parameters with G's buffers (BN statistics,
        spectral-norm vectors), as train_4ch.py saves `load_params(netG, avg_param_G)`."""
        net = FastGANSampler(self.config)
        state = self.nets["G_ema"].state_dict()
        state.update({k: v for k, v in self.nets["G"].named_buffers()})
        net.G.load_state_dict(state)
        return net, dict(self.lpips_provenance)


class FastGANSampler(nn.Module):
    """latent (n, nz + 1) -> (n, 4, S, S) in [-1, 1]; the last latent column seeds each
    sample's injected noise, so a sample depends on its own latent row only."""

    def __init__(self, config: FastGANConfig):
        super().__init__()
        self.config = config
        self.G = Generator(config.ngf, config.nz)
        for m in self.G.modules():
            if isinstance(m, BatchNorm):
                m.use_batch_stats = config.sample_bn == "batch"

    def latent(self, n: int, rng: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.config.nz, generator=rng)
        seeds = torch.randint(0, 2**24, (n, 1), generator=rng).float()  # exact in float32
        return torch.cat([z, seeds], dim=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        c = self.config
        z, seeds = latent[:, : c.nz], latent[:, c.nz].long().tolist()
        gens = [torch.Generator().manual_seed(s) for s in seeds]

        def run(idx: range) -> torch.Tensor:
            def noise(b, h, w, d):
                return torch.cat([torch.randn(1, 1, h, w, generator=gens[i]) for i in idx]).to(d)

            return self.G(z[idx.start : idx.stop], noise)[0]

        # generate_4ch.py runs batch 1 with BN on batch statistics: one sample per pass then.
        n = z.shape[0]
        parts = [run(range(i, i + 1)) for i in range(n)] if c.sample_bn == "batch" else [run(range(n))]
        out = torch.cat(parts)
        size = c.sample_size or c.resolution
        if size != out.shape[-1]:
            out = F.interpolate(out, size=size)  # nearest, as generate_4ch.py
        return out.clamp(-1, 1)


def _make_sampler(config: FastGANConfig, meta: Mapping[str, Any]) -> nn.Module:
    return FastGANSampler(config)


SPEC = GANSpec(
    name="fastgan",
    config_cls=FastGANConfig,
    presets=PRESETS,
    make_trainer=FastGANTrainer,
    make_sampler=_make_sampler,
    total_iterations=lambda config, num_images: config.iterations,
    resize="squash",  # train_4ch.py: transforms.Resize((im_size, im_size))
    stream_batches=True,  # train_4ch.py: InfiniteSamplerWrapper; k = 5 trains at batch 8
    notes=("paper: trained on the first k in {5, 10, ..., 50} images (FastGAN-4ch/train_4ch.sh)",),
)
