"""Train K independent SinGAN-Seg models as one batched computation (issue 8, items 1 and 3).

One SinGAN is batch-size-1 work on tiny convolutions, latency-bound rather than FLOP-bound
(anchors.md s2.1: tamarott/SinGAN#23, #92). K models whose pyramids have the same shapes
are trained together as ONE set of networks whose layers are K times wider:

- every Conv2d becomes a grouped convolution (groups=K) whose weight is the K models'
  weights stacked along the output channels; activations are laid out (1, K*C, H, W),
  model k owning channels k*C..(k+1)*C, so groups never mix models;
- BatchNorm over K*C channels with batch 1 is each model's batch-1 BatchNorm (paper.md s1:
  the statistics are per channel); LeakyReLU, Tanh, the residual crop and the resize are
  per channel;
- losses are per model (critic means, the WGAN-GP norm over each model's channels with one
  interpolation scalar PER MODEL, as training.py::gradient_penalty draws one per batch,
  the reconstruction MSE) and summed: a model's parameters only see its own term;
- one Adam / MultiStepLR over the stacked tensors is K Adams: Adam is elementwise and lr,
  betas and milestone are one config's (paper.md s1 table).

Everything else is singanseg/training.py's loop, step for step (same helpers: bn_repeat,
make_optimizers, the accumulate / per_step G modes, the snapshot forward). Each model
keeps its own torch.Generator, seeded exactly as singanseg.api.train seeds it, and draws in
the single-model order (init, the unused fixed_noise, per iteration the noise, per critic
step the 'rand' chain then the GP scalar), so the batched models equal the one-by-one ones
up to float rounding (tests/test_batched.py). Per-model state lives outside the batch:
at every scale the stacked nets are rebuilt from the per-model weights (copied from the
previous scale when nfc is unchanged, training.py::train) and split back afterwards, so
a model that fails to save drops out at the next scale and the others go on.

Model folders, bucketing, resume and failure isolation: singanseg.train_many_batched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from singanseg.config import SinGANConfig
from singanseg.imresize import imresize
from singanseg.networks import GeneratorConcatSkip2CleanAdd, WDiscriminator, init_models
from singanseg.pyramid import ScaleSpec
from singanseg.training import LOSS_KEYS, bn_repeat, make_optimizers, pad

# --- stacking K models into one wide network -------------------------------------------


def _widen(module: nn.Module, k: int) -> nn.Module:
    """Make every Conv2d grouped over k models and every BatchNorm2d k times wider, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            wide = nn.Conv2d(
                k * child.in_channels, k * child.out_channels, child.kernel_size, child.stride,
                child.padding, groups=k * child.groups, bias=child.bias is not None,
            )  # fmt: skip
            setattr(module, name, wide)
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(k * child.num_features, child.eps, child.momentum))
        else:
            _widen(child, k)
    return module


def stack_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """K state dicts of one architecture -> the grouped network's (concatenated on dim 0)."""
    out = {}
    for key, first in states[0].items():
        if first.ndim == 0:  # BatchNorm's num_batches_tracked: every model counts the same
            if any(not torch.equal(s[key], first) for s in states):
                raise ValueError(f"stack_states: {key} differs between the models")
            out[key] = first.clone()
        else:
            out[key] = torch.cat([s[key] for s in states], 0)
    return out


def unstack_state(state: dict[str, torch.Tensor], k: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of stack_states: k per-model state dicts (copies, on the CPU)."""
    parts = [{} for _ in range(k)]
    for key, t in state.items():
        t = t.detach().cpu()
        chunks = [t] * k if t.ndim == 0 else list(t.chunk(k, 0))
        for part, c in zip(parts, chunks, strict=True):
            part[key] = c.clone()
    return parts


def _net(cls, cfg: SinGANConfig, n: int, k: int = 1) -> nn.Module:
    nfc, min_nfc = cfg.nfc_at(n)
    with torch.random.fork_rng(devices=[]):  # constructors draw from the global RNG; we overwrite
        net = cls(cfg, nfc, min_nfc)
        return _widen(net, k) if k > 1 else net


def stacked(cls, cfg: SinGANConfig, n: int, states: Sequence[dict], device) -> nn.Module:
    """The grouped `cls` (generator or critic of scale n) holding the K models' weights."""
    net = _net(cls, cfg, n, len(states))
    net.load_state_dict(stack_states(states))
    return net.to(device)


def _frozen_copy(cls, cfg: SinGANConfig, n: int, state: dict) -> nn.Module:
    net = _net(cls, cfg, n)
    net.load_state_dict(state)
    net.eval()
    return net.requires_grad_(False)


# --- the batched per-scale loop (training.py, K models at once) -----------------------


@dataclass
class Member:
    """One model of a batch: its own folder, generator, pyramid and finished scales."""

    id: str
    folder: Path
    seed: int
    gen: torch.Generator
    reals: list[torch.Tensor]
    spec: ScaleSpec
    record: dict[str, Any]  # model.json fields fixed for the run (api.train's record)
    scales: list[dict[str, Any]] = field(default_factory=list)  # as api.train keeps them
    resumed: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple(tuple(r.shape[2:]) for r in self.reals)


def _cat_noise(draws: list[torch.Tensor], nc: int, device) -> torch.Tensor:
    # one channel expanded to nc_z at the coarsest scale (paper.md s1), per model
    return torch.cat([z.expand(1, nc, *z.shape[2:]) for z in draws], 1).to(device)


def _amp_tensor(amps: Sequence[float], nc: int, like: torch.Tensor) -> torch.Tensor:
    # one value per channel, in the data's dtype: the product the single loop computes with a
    # python-float scalar (which torch casts to the tensor's dtype)
    t = torch.tensor(amps, dtype=like.dtype).repeat_interleave(nc).view(1, -1, 1, 1)
    return t.to(like.device)


@dataclass
class _Chain:
    """The frozen coarser scales of K models, stacked (training.Frozen, batched)."""

    Gs: list[nn.Module]
    Zs: list[torch.Tensor]
    amps: list[torch.Tensor]


def _draw_concat(chain: _Chain, shapes, mode: str, cfg, scale_factor: float, gens, device):
    """training.draw_concat for K models: 'rand' draws each model's noise from its generator."""
    k_models, nc, p = len(gens), cfg.nc_z, cfg.pad
    G_z = torch.zeros(1, k_models * nc, *shapes[0], device=device)
    with torch.no_grad():
        for k, (G, Z_opt, amp) in enumerate(zip(chain.Gs, chain.Zs, chain.amps, strict=True)):
            h, w = shapes[k]
            if mode == "rand":
                c = 1 if k == 0 else nc
                z = pad(
                    _cat_noise([torch.randn(1, c, h, w, generator=g) for g in gens], nc, device), p
                )
            else:
                z = Z_opt
            G_z = pad(G_z[:, :, :h, :w], p)
            G_z = G(amp * z + G_z, G_z)
            G_z = imresize(G_z, 1 / scale_factor, cfg.resize)
            G_z = G_z[:, :, : shapes[k + 1][0], : shapes[k + 1][1]]
    return G_z


def _means(out: torch.Tensor, k: int) -> torch.Tensor:
    """Per-model mean of a (1, k*c, h, w) map: `.mean()` of each model's map, as one kernel
    (a per-model loop costs k launches on a GPU; the gradient, 1/N each, is the same)."""
    return out.reshape(k, -1).mean(1)


def _gradient_penalty(netD, real, fake, cfg: SinGANConfig, gens) -> torch.Tensor:
    """training.gradient_penalty per model: ONE scalar per model, the norm over its channels."""
    k = len(gens)
    a = torch.cat([torch.rand(1, 1, generator=g) for g in gens]).to(real.device)
    a = a.view(1, k, 1, 1).repeat_interleave(cfg.nc_im, 1).expand(real.size())
    interpolates = (a * real + (1 - a) * fake.detach()).requires_grad_(True)
    out = netD(interpolates)
    grads = torch.autograd.grad(out, interpolates, torch.ones_like(out), create_graph=True)[0]
    norms = grads.reshape(k, cfg.nc_im, *grads.shape[2:]).norm(2, dim=1)
    return _means((norms - 1) ** 2, k) * cfg.lambda_grad


def _rec_step(netG, Z_opt, z_prev, real, cfg: SinGANConfig, k: int, repeat: int) -> torch.Tensor:
    if cfg.alpha == 0:
        return torch.zeros(k, device=real.device)
    with bn_repeat(netG, repeat):
        out = netG(Z_opt, z_prev)
    # F.mse_loss per model, not a vectorised square-and-mean: its backward rounds differently,
    # and Adam amplifies any rounding on the biases before a BatchNorm (true gradient 0)
    pairs = zip(out.chunk(k, 1), real.chunk(k, 1), strict=True)
    rec = torch.stack([cfg.alpha * F.mse_loss(o, r) for o, r in pairs])
    rec.sum().backward()
    return rec.detach()


def train_scale_batched(
    n: int, members: Sequence[Member], cfg: SinGANConfig, device, progress=None
) -> list[dict[str, Any]]:
    """Scale n of every member (all with n finished scales and one pyramid): api.train's entries."""
    t0 = time.perf_counter()
    k, gens, nc, p = len(members), [m.gen for m in members], cfg.nc_z, cfg.pad
    shapes = members[0].shapes
    scale_factor = members[0].spec.scale_factor
    copy = n > 0 and cfg.nfc_at(n - 1)[0] == cfg.nfc_at(n)[0]
    states_D, states_G = [], []
    for m in members:  # the draws of training.train_scale, per model, in its order
        netD, netG = init_models(cfg, n, m.gen)
        if copy:
            netD.load_state_dict(m.scales[-1]["D"].state_dict())
            netG.load_state_dict(m.scales[-1]["G"].state_dict())
        torch.randn(1, nc, *shapes[n], generator=m.gen)  # the reference's unused fixed_noise
        states_D.append(netD.state_dict())
        states_G.append(netG.state_dict())
    netD = stacked(WDiscriminator, cfg, n, states_D, device)
    netG = stacked(GeneratorConcatSkip2CleanAdd, cfg, n, states_G, device)
    real = torch.cat([m.reals[n] for m in members], 1).to(device)
    chain = _Chain(
        [stacked(GeneratorConcatSkip2CleanAdd, cfg, j, [m.scales[j]["G"].state_dict() for m in members], device).eval()
         for j in range(n)],
        [torch.cat([m.scales[j]["z_opt"] for m in members], 1).to(device) for j in range(n)],
        [_amp_tensor([m.scales[j]["noise_amp"] for m in members], nc, real) for j in range(n)],
    )  # fmt: skip
    for G in chain.Gs:
        G.requires_grad_(False)

    # training.scale_inputs: the fixed 'rec' input and noise_amp = 0.1 * RMSE per model
    z_prev = _draw_concat(chain, shapes, "rec", cfg, scale_factor, gens, device)
    if n == 0:
        amps = [1.0] * k
    else:
        amps = [
            float(cfg.noise_amp * torch.sqrt(F.mse_loss(r, z)))
            for r, z in zip(real.chunk(k, 1), z_prev.chunk(k, 1), strict=True)
        ]
    z_prev = pad(z_prev, p)
    amp = _amp_tensor(amps, nc, real)
    optD, optG, schedD, schedG = make_optimizers(netD, netG, cfg)

    # training.train_single_scale, batched
    h, w = shapes[n]
    zeros = torch.zeros(1, k * nc, h + 2 * p, w + 2 * p, device=device)
    z_opt = zeros
    hist: dict[str, list[torch.Tensor]] = {key: [] for key in LOSS_KEYS}
    accumulate = cfg.g_steps_mode == "accumulate"
    for epoch in range(cfg.niter):
        if n == 0:
            draws = [
                (torch.randn(1, 1, h, w, generator=g), torch.randn(1, 1, h, w, generator=g))
                for g in gens
            ]
            z_opt = pad(_cat_noise([d[0] for d in draws], nc, device), p)
            noise_ = pad(_cat_noise([d[1] for d in draws], nc, device), p)
        else:
            noise_ = pad(
                torch.cat([torch.randn(1, nc, h, w, generator=g) for g in gens], 1).to(device), p
            )

        for j in range(cfg.Dsteps):
            optD.zero_grad(set_to_none=True)
            errD_real = -_means(netD(real), k)
            errD_real.sum().backward()
            if n == 0:
                prev = zeros
                noise = noise_
            else:
                prev = pad(_draw_concat(chain, shapes, "rand", cfg, scale_factor, gens, device), p)
                noise = amp * noise_ + prev
            with torch.set_grad_enabled(accumulate and j == cfg.Dsteps - 1):
                fake = netG(noise, prev)
            errD_fake = _means(netD(fake.detach()), k)
            errD_fake.sum().backward()
            gp = _gradient_penalty(netD, real, fake, cfg, gens)
            gp.sum().backward()
            optD.step()
        errD = errD_real.detach() + errD_fake.detach() + gp.detach()
        D_x, D_G_z = -errD_real.detach(), errD_fake.detach()

        Z_opt = amp * z_opt + z_prev
        if accumulate:
            optG.zero_grad(set_to_none=True)
            with bn_repeat(netD, cfg.Gsteps):
                errG = -_means(netD(fake), k)
            errG.sum().backward(inputs=list(netG.parameters()))
            rec_loss = _rec_step(netG, Z_opt, z_prev, real, cfg, k, cfg.Gsteps)
            optG.step()
        else:
            for _ in range(cfg.Gsteps):
                optG.zero_grad(set_to_none=True)
                fake = netG(noise, prev)
                errG = -_means(netD(fake), k)
                errG.sum().backward(inputs=list(netG.parameters()))
                rec_loss = _rec_step(netG, Z_opt, z_prev, real, cfg, k, 1)
                optG.step()
        if cfg.snapshot_every and (epoch % cfg.snapshot_every == 0 or epoch == cfg.niter - 1):
            with torch.no_grad():
                netG(Z_opt, z_prev)
        for key, v in zip(
            LOSS_KEYS, (errD, errG.detach() + rec_loss, rec_loss, D_x, D_G_z), strict=True
        ):
            hist[key].append(v)
        schedD.step()
        schedG.step()
        if progress is not None:
            progress.update(1)

    seconds = time.perf_counter() - t0
    losses = {key: torch.stack(v).float().cpu() for key, v in hist.items()}  # (niter, k)
    Gs, Ds = unstack_state(netG.state_dict(), k), unstack_state(netD.state_dict(), k)
    return [
        {
            "G": _frozen_copy(GeneratorConcatSkip2CleanAdd, cfg, n, Gs[i]),
            "D": _frozen_copy(WDiscriminator, cfg, n, Ds[i]),
            "z_opt": z.detach().cpu().clone(),
            "real": m.reals[n],
            "noise_amp": amps[i],
            "losses": {key: v[:, i].tolist() for key, v in losses.items()},
            "seconds": seconds,
        }
        for i, (m, z) in enumerate(zip(members, z_opt.chunk(k, 1), strict=True))
    ]


__all__ = [
    "Member",
    "stack_states",
    "stacked",
    "train_scale_batched",
    "unstack_state",
]
