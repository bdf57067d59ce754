"""Progressive GAN on 4-channel RGB+mask data, as the authors ran it.

Facts: `../shared/docs/paper.md` section 6 (ProGAN row) and `../shared/docs/anchors.md`
section 1.2. The authors' `ProGAN-4ch/train_4ch.py` + `progan_modules_4ch.py` is a copy
of odegeasslbc/Progressive-GAN-pytorch (itself descended from
rosinality/progressive-gan-pytorch): WGAN-GP (lambda 10) + drift 0.001, Adam 1e-3
(0, 0.99), batch 4, z 128, channel 128, n_critic 1, equalised learning rate, minibatch
stddev, EMA generator 0.999, growth from 8 px (step 1) to 256 px (step 6), each phase
`total_iter // 6` iterations with the fade-in `alpha` ramping to 1 over half a phase.

Step k works at 4 * 2**k px. Deviations (named options) are in docs/deviations/baselines.md.
"""

from __future__ import annotations

import math
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
class ProGANConfig:
    resolution: int = 256  # final size: step 6 (paper.md section 6: "256x256 (step 6)")
    z_dim: int = 128  # --z_dim 128 (ProGAN-4ch/train_4ch.py)
    channel: int = 128  # --channel 128
    batch_size: int = 4  # --batch_size 4
    lr: float = 1e-3  # --lr 0.001
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (train_4ch.py)
    n_critic: int = 1  # --n_critic 1
    total_iter: int = 300_000  # --total_iter 300000 (`ProGAN_300000_g.model`, paper.md section 6)
    init_step: int = 1  # --init_step 1: start at 8 px
    num_phases: int = 6  # phase length = total_iter // 6 (hard-coded 6 in train_4ch.py)
    lambda_gp: float = 10.0  # `grad_penalty = 10 * grad_penalty`
    drift: float = 0.001  # `- 0.001 * (real_predict ** 2).mean()`
    ema_decay: float = 0.999  # `accumulate(g_running, generator)` default decay
    # The authors ran with `--pixel_norm` off (argparse default False): the generator's
    # conv blocks have no pixel norm; Karras et al.'s ProGAN has it (anchors 1.2). True = Karras.
    pixel_norm: bool = False
    # The port's discriminator ConvBlocks keep their constructor default pixel_norm=True
    # (progan_modules_4ch.py); Karras's D has none. False = Karras.
    pixel_norm_d: bool = True
    tanh: bool = False  # `--tanh` off by default (train_4ch.py)
    # Data augmentation per step (train_4ch.py: sample_data): Resize(s + int(0.2 s) + 1),
    # RandomCrop(s), RandomHorizontalFlip.
    crop_scale: float = 0.2
    flip: bool = True
    checkpoint_every: int = 10_000  # the authors saved every 10000 iterations

    @property
    def max_step(self) -> int:
        return int(math.log2(self.resolution)) - 2

    def phase_iter(self) -> int:
        return self.total_iter // self.num_phases

    def validate(self, where: str = "progan") -> None:
        if self.resolution < 8 or self.resolution > 256 or self.resolution & (self.resolution - 1):
            raise ConfigError(
                f"{where}.resolution: must be a power of 2 in 8..256, got {self.resolution}"
            )
        if not 1 <= self.init_step <= self.max_step:
            raise ConfigError(
                f"{where}.init_step: must be in 1..{self.max_step} for resolution {self.resolution}, got {self.init_step}"
            )
        if self.channel < 4 or self.channel % 4:
            raise ConfigError(
                f"{where}.channel: must be a positive multiple of 4, got {self.channel}"
            )
        if self.phase_iter() < 1:
            raise ConfigError(
                f"{where}.total_iter: {self.total_iter} gives phases of 0 iterations (num_phases {self.num_phases})"
            )
        for key in ("batch_size", "n_critic", "checkpoint_every", "z_dim", "num_phases"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1, got {getattr(self, key)}")


# profile name -> params.yaml's `baselines.progan` under that profile (`paper` = the defaults
# above; tests/test_profiles.py checks they agree)
PRESETS = ProfilePresets("baselines", "progan")


def schedule(i: int, config: ProGANConfig) -> tuple[int, float]:
    """(step, alpha) at global iteration i (0-based), exactly as train_4ch.py's counters.

    There `alpha = min(1, 2 / P * iteration)` with a phase-local counter that resets when
    it exceeds P = total_iter // 6, so a phase lasts P + 1 iterations and alpha reaches 1
    after half of it. Beyond the last step the step stays and alpha is 1 at the reset.
    """
    p = config.phase_iter()
    phase, local = divmod(i, p + 1)
    step = config.init_step + phase
    alpha = min(1.0, 2.0 / p * local)
    if step > config.max_step:
        step = config.max_step
        if local == 0:
            alpha = 1.0
    return step, alpha


# ---------------------------------------------------------------- layers


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: N(0, 1) weights scaled by sqrt(2 / fan_in) at run time.

    fan_in = weight.size(1) * k * k as in the port's `EqualLR.compute_weight`; for the
    transposed conv that is the output channels (a quirk kept on purpose).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, padding: int = 0, transpose: bool = False
    ):
        super().__init__()
        shape = (c_in, c_out, kernel, kernel) if transpose else (c_out, c_in, kernel, kernel)
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = math.sqrt(2 / (shape[1] * kernel * kernel))
        self.padding, self.transpose = padding, transpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.scale
        if self.transpose:
            return F.conv_transpose2d(x, w, self.bias, padding=self.padding)
        return F.conv2d(x, w, self.bias, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = math.sqrt(2 / c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


def conv_block(
    c_in: int, c_out: int, pixel_norm: bool, k1: int = 3, p1: int = 1, k2: int = 3, p2: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = [EqualConv2d(c_in, c_out, k1, p1)]
    layers += [PixelNorm()] if pixel_norm else []
    layers += [nn.LeakyReLU(0.1), EqualConv2d(c_out, c_out, k2, p2)]
    layers += [PixelNorm()] if pixel_norm else []
    layers += [nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


def up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def down(x: torch.Tensor) -> torch.Tensor:
    # the port downsamples by bilinear interpolation, not avg_pool (progan_modules_4ch.py)
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


def widths(channel: int, max_step: int) -> list[int]:
    """Feature width at each step: ch up to 32 px, ch/2 at 64, ch/4 at 128 and 256 (the port)."""
    table = [channel, channel, channel, channel, channel // 2, channel // 4, channel // 4]
    return table[: max_step + 1]


class Generator(nn.Module):
    def __init__(self, config: ProGANConfig):
        super().__init__()
        self.z_dim, self.tanh = config.z_dim, config.tanh
        w = widths(config.channel, config.max_step)
        self.input_layer = nn.Sequential(
            EqualConv2d(config.z_dim, config.channel, 4, transpose=True),
            PixelNorm(),
            nn.LeakyReLU(0.1),
        )
        self.blocks = nn.ModuleList(
            [
                conv_block(config.channel if k == 0 else w[k - 1], w[k], config.pixel_norm)
                for k in range(len(w))
            ]
        )
        # to_rgb[0] (4 px) is never used by the port (step >= 1); kept out.
        self.to_rgb = nn.ModuleList(
            [nn.Identity()] + [EqualConv2d(w[k], NUM_CHANNELS, 1) for k in range(1, len(w))]
        )

    def forward(self, z: torch.Tensor, step: int, alpha: float = 1.0) -> torch.Tensor:
        out = self.blocks[0](self.input_layer(z.view(-1, self.z_dim, 1, 1)))
        prev = out
        for k in range(1, step + 1):
            prev, out = out, self.blocks[k](up(out))
        if step > 1 and 0 <= alpha < 1:
            # fade-in: the previous resolution's RGB, upsampled, mixed with the new layer's
            x = (1 - alpha) * up(self.to_rgb[step - 1](prev)) + alpha * self.to_rgb[step](out)
        else:
            x = self.to_rgb[step](out)  # step 1 never fades in the port's generator
        return torch.tanh(x) if self.tanh else x


class Discriminator(nn.Module):
    def __init__(self, config: ProGANConfig):
        super().__init__()
        ch = config.channel
        # input width of each step's block: the width the from_rgb layer feeds it
        d_in = [ch, ch, ch, ch, ch // 2, ch // 4, ch // 4][: config.max_step + 1]
        d_out = [ch, ch, ch, ch, ch, ch // 2, ch // 4][: config.max_step + 1]
        pn = config.pixel_norm_d
        self.blocks = nn.ModuleList(
            [conv_block(ch + 1, ch, pn, 3, 1, 4, 0)]
            + [conv_block(d_in[k], d_out[k], pn) for k in range(1, len(d_in))]
        )
        self.from_rgb = nn.ModuleList(
            [EqualConv2d(NUM_CHANNELS, d_in[k], 1) for k in range(len(d_in))]
        )
        self.linear = EqualLinear(ch, 1)

    def forward(self, x: torch.Tensor, step: int, alpha: float = 1.0) -> torch.Tensor:
        out = self.from_rgb[step](x)
        for k in range(step, -1, -1):
            if k == 0:
                # minibatch stddev over the whole batch, one feature map (the port)
                std = torch.sqrt(out.var(0, unbiased=False) + 1e-8).mean()
                out = torch.cat([out, std.expand(out.size(0), 1, 4, 4)], 1)
            out = self.blocks[k](out)
            if k > 0:
                out = down(out)
                if k == step and 0 <= alpha < 1:
                    out = (1 - alpha) * self.from_rgb[k - 1](down(x)) + alpha * out
        return self.linear(out.flatten(1))


class ProGANSampler(nn.Module):
    """The EMA generator at a fixed (step, alpha): what `load` samples from."""

    def __init__(self, config: ProGANConfig, step: int, alpha: float, g: Generator | None = None):
        super().__init__()
        self.g = g if g is not None else Generator(config)
        self.step, self.alpha, self.z_dim = step, alpha, config.z_dim

    def latent(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=rng)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.g(z, self.step, self.alpha)


# ---------------------------------------------------------------- training


def augment(
    real: torch.Tensor, size: int, config: ProGANConfig, rng: torch.Generator
) -> torch.Tensor:
    """Resize to size + int(crop_scale * size) + 1, random crop `size` per sample, flip."""
    big = size + int(size * config.crop_scale) + 1
    x = F.interpolate(real, size=(big, big), mode="bilinear", align_corners=False, antialias=True)
    offs = torch.randint(0, big - size + 1, (x.shape[0], 2), generator=rng).tolist()
    x = torch.stack(
        [s[:, top : top + size, left : left + size] for s, (top, left) in zip(x, offs, strict=True)]
    )
    return random_hflip(x, rng) if config.flip else x


class ProGANTrainer:
    def __init__(self, config: ProGANConfig, device: torch.device):
        self.config, self.device = config, device
        self.G = Generator(config).to(device)
        self.D = Discriminator(config).to(device)
        self.G_ema = Generator(config).to(device)
        self.G_ema.load_state_dict(self.G.state_dict())  # accumulate(g_running, generator, 0)
        self.G_ema.requires_grad_(False)
        self.nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=config.betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=config.lr, betas=config.betas),
        }
        self.last = schedule(0, config)

    def step(self, real: torch.Tensor, iteration: int, rng: torch.Generator) -> dict[str, float]:
        c = self.config
        step, alpha = self.last = schedule(iteration, c)
        real = augment(real, 4 * 2**step, c, rng)
        b = real.shape[0]
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]

        # D: WGAN-GP with the drift term (train_4ch.py: real.mean() - 0.001 * (real**2).mean())
        opt_d.zero_grad(set_to_none=True)
        real_out = self.D(real, step, alpha)
        real_term = real_out.mean() - c.drift * (real_out**2).mean()
        z = torch.randn(b, c.z_dim, generator=rng).to(self.device)
        fake = self.G(z, step, alpha)
        fake_term = self.D(fake.detach(), step, alpha).mean()
        eps = torch.rand(b, 1, 1, 1, generator=rng).to(self.device)
        x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
        grad = torch.autograd.grad(self.D(x_hat, step, alpha).sum(), x_hat, create_graph=True)[0]
        gp = c.lambda_gp * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        (fake_term - real_term + gp).backward()
        opt_d.step()
        losses = {
            "loss_d": (real_term - fake_term).item(),
            "grad_penalty": gp.item(),
            "alpha": alpha,
            "step": float(step),
        }

        if (iteration + 1) % c.n_critic == 0:
            opt_g.zero_grad(set_to_none=True)
            loss_g = -self.D(fake, step, alpha).mean()
            loss_g.backward()
            opt_g.step()
            with torch.no_grad():
                for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                    pe.mul_(c.ema_decay).add_(p, alpha=1 - c.ema_decay)
            losses["loss_g"] = loss_g.item()
        return losses

    def sampler(self) -> tuple[nn.Module, dict[str, Any]]:
        step, alpha = self.last
        return ProGANSampler(self.config, step, alpha, self.G_ema), {"step": step, "alpha": alpha}


def make_sampler(config: ProGANConfig, meta: dict[str, Any]) -> ProGANSampler:
    return ProGANSampler(
        config, int(meta.get("step", config.max_step)), float(meta.get("alpha", 1.0))
    )


def total_iterations(config: ProGANConfig, num_images: int) -> int:
    # train_4ch.py: total_iter_remain = total_iter - (total_iter // 6) * (init_step - 1)
    return config.total_iter - config.phase_iter() * (config.init_step - 1)


def load_resolution(config: ProGANConfig) -> int:
    # stored at the largest step's pre-crop size, so each step can resize and crop from it
    return config.resolution + int(config.resolution * config.crop_scale) + 1


SPEC = GANSpec(
    name="progan",
    config_cls=ProGANConfig,
    presets=PRESETS,
    make_trainer=ProGANTrainer,
    make_sampler=make_sampler,
    total_iterations=total_iterations,
    resize="center_crop",
    load_resolution=load_resolution,
)
