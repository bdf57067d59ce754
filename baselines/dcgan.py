"""DCGAN on 4-channel RGB+mask data, as the authors ran it.

Facts: `../shared/docs/paper.md` section 6 (DCGAN row), `../shared/docs/anchors.md`
section 1.3. The authors' `DCGAN-4ch/train_4ch.py` is pytorch/examples `dcgan/main.py`
with `nc=4`, `--batchSize 8`, `--imageSize 64`, `--niter 1000` (epochs), the 4-channel
tensors of `custom_data.py::ImageAndMaskDataFromSinGAN` resized to 64x64 (squashed) and
randomly flipped. Generation (`DCGAN-4ch/generate.py`) used `netG_epoch_500.pth` in eval
mode: `generate_from_epoch` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import GANSpec
from baselines.data import NUM_CHANNELS, random_hflip
from singanseg.profiles import ProfilePresets
from singanseg.typed import ConfigError


@dataclass(frozen=True)
class DCGANConfig:
    resolution: int = 64  # --imageSize 64 (DCGAN-4ch/train_4ch.py; paper.md section 6)
    nz: int = 100  # --nz 100
    ngf: int = 64  # --ngf 64
    ndf: int = 64  # --ndf 64
    batch_size: int = 8  # --batchSize 8
    lr: float = 2e-4  # --lr 0.0002
    betas: tuple[float, float] = (0.5, 0.999)  # --beta1 0.5, Adam betas=(beta1, 0.999)
    niter: int = 1000  # --niter 1000 epochs
    # generate.py loads netG_epoch_500.pth; the training loop saves `netG_epoch_<e>` after
    # epoch index e, i.e. after e + 1 epochs. None = the last epoch.
    generate_from_epoch: int | None = 500
    flip: bool = True  # transforms.RandomHorizontalFlip() in the 'polyp' transform
    init_std: float = 0.02  # weights_init: conv N(0, 0.02), BatchNorm N(1, 0.02), bias 0
    # iterations; the authors saved every 10 epochs (10 x 125 batches of 1000 images)
    checkpoint_every: int = 1250

    def validate(self, where: str = "dcgan") -> None:
        if self.resolution != 64:
            raise ConfigError(
                f"{where}.resolution: the DCGAN architecture (five 4x4 stride-2 layers) makes 64 px only, got {self.resolution}"
            )
        for key in ("nz", "ngf", "ndf", "batch_size", "niter", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1, got {getattr(self, key)}")
        if self.generate_from_epoch is not None and not 0 <= self.generate_from_epoch < self.niter:
            raise ConfigError(
                f"{where}.generate_from_epoch: {self.generate_from_epoch} is not an epoch index of a "
                f"{self.niter}-epoch run (0..{self.niter - 1}); use null for the last epoch"
            )


# profile name -> params.yaml's `baselines.dcgan` under that profile (`paper` = the defaults
# above; tests/test_profiles.py checks they agree)
PRESETS = ProfilePresets("baselines", "dcgan")


class Generator(nn.Module):
    """Five ConvTranspose2d(4, 2, 1) layers, BN + ReLU, tanh: z (nz x 1 x 1) -> 4 x 64 x 64."""

    def __init__(self, c: DCGANConfig):
        super().__init__()
        g, self.nz = c.ngf, c.nz
        widths = [c.nz, g * 8, g * 4, g * 2, g]
        layers: list[nn.Module] = []
        for i in range(4):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [
                nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride, pad, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(g, NUM_CHANNELS, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def latent(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.nz, 1, 1, generator=rng)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """Conv(4, 2, 1) + LeakyReLU 0.2, BN from the second layer on, sigmoid: 4 x 64 x 64 -> p(real)."""

    def __init__(self, c: DCGANConfig):
        super().__init__()
        d = c.ndf
        layers: list[nn.Module] = [
            nn.Conv2d(NUM_CHANNELS, d, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for m in (1, 2, 4):
            layers += [
                nn.Conv2d(d * m, d * m * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(d * m * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(d * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def weights_init(m: nn.Module, std: float) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, std)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, std)
        nn.init.zeros_(m.bias)


class DCGANTrainer:
    def __init__(self, config: DCGANConfig, device: torch.device):
        self.config, self.device = config, device
        self.G = Generator(config)
        self.D = Discriminator(config)
        for net in (self.G, self.D):
            net.apply(lambda m: weights_init(m, config.init_std))
            net.to(device).train()
        # no EMA generator in the authors' DCGAN
        self.nets = {"G": self.G, "D": self.D}
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=config.betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=config.lr, betas=config.betas),
        }

    def step(self, real: torch.Tensor, iteration: int, rng: torch.Generator) -> dict[str, float]:
        c = self.config
        if c.flip:
            real = random_hflip(real, rng)
        b = real.shape[0]
        ones, zeros = torch.ones(b, device=self.device), torch.zeros(b, device=self.device)
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        self.G.train()
        # (1) D: maximise log D(x) + log(1 - D(G(z))), one backward per term as main.py
        opt_d.zero_grad(set_to_none=True)
        out_real = self.D(real)
        err_real = F.binary_cross_entropy(out_real, ones)
        err_real.backward()
        z = torch.randn(b, c.nz, 1, 1, generator=rng).to(self.device)
        fake = self.G(z)
        out_fake = self.D(fake.detach())
        err_fake = F.binary_cross_entropy(out_fake, zeros)
        err_fake.backward()
        opt_d.step()
        # (2) G: maximise log D(G(z)) (non-saturating), with the updated D
        opt_g.zero_grad(set_to_none=True)
        out_g = self.D(fake)
        err_g = F.binary_cross_entropy(out_g, ones)
        err_g.backward()
        opt_g.step()
        return {
            "loss_d": err_real.item() + err_fake.item(),
            "loss_g": err_g.item(),
            "d_x": out_real.mean().item(),
            "d_g_z": out_fake.mean().item(),
        }

    def sampler(self) -> tuple[nn.Module, dict[str, Any]]:
        return self.G, {}


def make_sampler(config: DCGANConfig, meta: dict[str, Any]) -> Generator:
    # `load` puts it in eval mode: generate.py calls netG.eval() (BatchNorm running stats)
    return Generator(config)


def iterations_per_epoch(config: DCGANConfig, num_images: int) -> int:
    return num_images // config.batch_size  # full batches only (docs/deviations/baselines.md)


def total_iterations(config: DCGANConfig, num_images: int) -> int:
    return config.niter * iterations_per_epoch(config, num_images)


def generation_iteration(config: DCGANConfig, num_images: int) -> int:
    if config.generate_from_epoch is None:
        return total_iterations(config, num_images)
    return (config.generate_from_epoch + 1) * iterations_per_epoch(config, num_images)


SPEC = GANSpec(
    name="dcgan",
    config_cls=DCGANConfig,
    presets=PRESETS,
    make_trainer=DCGANTrainer,
    make_sampler=make_sampler,
    total_iterations=total_iterations,
    generation_iteration=generation_iteration,
    resize="squash",
)
