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

The networks are in `baselines/fastgan_nets.py`. Deviations are named options, documented
in docs/deviations/fastgan.md.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import GANSpec
from baselines.data import random_hflip
from baselines.diffaugment import DiffAugment, parse_policy
from baselines.fastgan_lpips import build_lpips
from baselines.fastgan_nets import (
    NC,
    SMALL,
    BatchNorm,
    Discriminator,
    Generator,
    crop_part,
    real_pair,
)
from singanseg.profiles import ProfilePresets
from singanseg.typed import ConfigError


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


# profile name -> params.yaml's `baselines.fastgan` under that profile (`paper` = the defaults
# above; tests/test_profiles.py checks they agree)
PRESETS = ProfilePresets("baselines", "fastgan")


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
