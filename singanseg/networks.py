"""Generator and critic of one SinGAN scale (paper.md s1 "Hyper-parameters"; anchors.md s2.1).

Same layers, order and state-dict names as the authors' `SinGAN/models.py`
(`ConvBlock` = conv -> BatchNorm -> LeakyReLU(0.2); `head`, `body.block1..`, `tail`), so a
state dict moves between the two unchanged (the equivalence test relies on it).
Initialisation draws from an explicit `torch.Generator` in the reference's order: the
layers' default init (kaiming-uniform weight, uniform bias, in construction order), then
`weights_init` (conv weight N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0). Seeded like
the reference's global RNG, it yields the same weights without touching global state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from singanseg.config import SinGANConfig


class ConvBlock(nn.Sequential):
    def __init__(self, in_channel: int, out_channel: int, ker_size: int, padd: int, stride: int):
        super().__init__()
        self.add_module(
            "conv",
            nn.Conv2d(in_channel, out_channel, kernel_size=ker_size, stride=stride, padding=padd),
        )
        self.add_module("norm", nn.BatchNorm2d(out_channel))
        self.add_module("LeakyRelu", nn.LeakyReLU(0.2, inplace=True))


def _body(cfg: SinGANConfig, nfc: int, min_nfc: int) -> tuple[ConvBlock, nn.Sequential, int]:
    head = ConvBlock(cfg.nc_im, nfc, cfg.ker_size, cfg.padd_size, 1)
    body = nn.Sequential()
    n = nfc
    for i in range(cfg.num_layer - 2):
        n = int(nfc / 2 ** (i + 1))
        body.add_module(
            f"block{i + 1}",
            ConvBlock(max(2 * n, min_nfc), max(n, min_nfc), cfg.ker_size, cfg.padd_size, 1),
        )
    return head, body, max(n, min_nfc)


class WDiscriminator(nn.Module):
    """Patch critic: the generator's body, then a conv to one channel (a score map)."""

    def __init__(self, cfg: SinGANConfig, nfc: int, min_nfc: int):
        super().__init__()
        self.head, self.body, n = _body(cfg, nfc, min_nfc)
        self.tail = nn.Conv2d(n, 1, kernel_size=cfg.ker_size, stride=1, padding=cfg.padd_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x)))


class GeneratorConcatSkip2CleanAdd(nn.Module):
    """G_n(z + up(x), up(x)) = tanh(conv(...)) + up(x) cropped: a residual on the coarser image."""

    def __init__(self, cfg: SinGANConfig, nfc: int, min_nfc: int):
        super().__init__()
        self.head, self.body, n = _body(cfg, nfc, min_nfc)
        self.tail = nn.Sequential(
            nn.Conv2d(n, cfg.nc_im, kernel_size=cfg.ker_size, stride=1, padding=cfg.padd_size),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.tail(self.body(self.head(x)))
        ind = int((y.shape[2] - x.shape[2]) / 2)
        y = y[:, :, ind : (y.shape[2] - ind), ind : (y.shape[3] - ind)]
        return x + y


def _default_init(module: nn.Module, gen: torch.Generator) -> None:
    # nn.Conv2d.reset_parameters with an explicit generator: kaiming_uniform_(a=sqrt(5)),
    # then bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm's default init draws nothing.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)


def _weights_init(module: nn.Module, gen: torch.Generator) -> None:
    # models.py::weights_init applied with Module.apply (children before parents, which for
    # these leaf layers is construction order).
    for m in module.modules():
        name = m.__class__.__name__
        if name.find("Conv2d") != -1:
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=gen)
        elif name.find("Norm") != -1:
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=gen)
                m.bias.fill_(0)


def init_models(
    cfg: SinGANConfig, scale: int, gen: torch.Generator
) -> tuple[WDiscriminator, GeneratorConcatSkip2CleanAdd]:
    """(netD, netG) of `scale`, drawn in the reference order (training.py::init_models: G first)."""
    nfc, min_nfc = cfg.nfc_at(scale)
    with torch.random.fork_rng(devices=[]):  # the layers' constructors draw from the global RNG
        netG = GeneratorConcatSkip2CleanAdd(cfg, nfc, min_nfc)
        netD = WDiscriminator(cfg, nfc, min_nfc)
    # the reference constructs G, applies weights_init, then constructs and inits D
    _default_init(netG, gen)
    _weights_init(netG, gen)
    _default_init(netD, gen)
    _weights_init(netD, gen)
    return netD, netG
