"""The per-scale SinGAN-Seg training loop, for one model or K at once (paper.md s1; anchors.md s2.1).

ONE implementation serves `singanseg train` (K = 1) and `train-many --batch K`: K models
whose pyramids have the same shapes train as one set of networks K times wider
(singanseg.training_batched: grouped convolutions, activations (1, K*C, H, W), model k
owning channels k*C..(k+1)*C); at K = 1 those are the plain networks. Per model the loop
is the authors' `SinGAN/training.py` (singan_seg_polyp 1.0.7) step for step, and each
model draws its random numbers from its own `torch.Generator` in the reference's order,
so a K = 1 run seeded like the reference's global RNG reproduces it bit for bit
(tests/test_singan_equivalence.py) and a model trained in a batch draws exactly what it
draws alone (tests/test_batched.py):

- per iteration: fresh noise (one channel expanded to nc_z at the coarsest scale, where the
  reconstruction noise z_opt is also redrawn every iteration, as the reference does);
- Dsteps critic steps: -D(real), D(G(noise, prev)) with a fresh 'rand' draw of `prev`
  through the frozen coarser generators, WGAN-GP with one interpolation scalar per model
  (the reference's one per batch; lambda_grad 0.1, gradient norm over the model's channels);
- Gsteps generator passes: -D(fake) + alpha * MSE(G(noise_amp*z_opt + z_prev), real).
  `accumulate` (the paper's code): `netG.zero_grad()` opens every pass and one
  `optimizerG.step()` follows the loop, so only the last pass's gradients reach the step;
  the passes are identical (same fake, same weights), so we run one and replay the
  BatchNorm running-statistics updates of the other two (docs/deviations/singan.md).
  `per_step` (original SinGAN): a step per pass, with `fake` regenerated from the current
  weights (needed since PyTorch 1.5, tamarott/SinGAN#148).

Losses are per model (critic means, the GP, the reconstruction MSE) and summed for the
backward: a model's parameters only see its own term, and one Adam / MultiStepLR over the
stacked tensors is K Adams (Adam is elementwise; lr, betas and milestone are one config's).

What "the same" means in float32: the grouped convolutions of K > 1 round differently from
K = 1, and the conv biases in front of a BatchNorm have a true gradient of 0, so Adam turns
their rounding noise into ~lr steps (first steps are ~lr * sign(g)); through the coarser
scales' BatchNorm running means (eval mode) this reaches the other weights. A model trained
in a batch then differs from its K = 1 run as much as a K = 1 run differs from itself with
its input moved by 1e-7 (measured in tests/test_batched.py); in float64 they are equal.

Speed without changing the algorithm: the 'rec' chain is computed once per scale (it is
fixed), pyramid and padding are precomputed, the frozen chain runs under no_grad, the
first Dsteps-1 fakes are made without an autograd graph (only the last one is reused by the
generator passes), and the resize is a pair of matmuls (`resize: torch`).

Model folders, resume and seeds: singanseg.api (`open_model`, `train_members`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
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
from singanseg.training_batched import frozen_copy, stacked, unstack_state

LOSS_KEYS = ("errD", "errG", "rec_loss", "D_x", "D_G_z")


class NonFiniteLossError(ValueError):
    """A loss became NaN or infinite; the scales finished before are kept."""


def check_losses_finite(losses: dict[str, list[float]], n: int) -> None:
    """Refuse a scale whose losses are not all finite (one line, the first bad iteration named).

    Checked once per scale, on the recorded history, not per iteration: a per-iteration
    check would synchronise the GPU every step. A diverged scale is never saved, so the
    model folder keeps its finished scales and resumes from them.
    """
    for key, values in losses.items():
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        if bad is not None:
            raise NonFiniteLossError(
                f"scale {n}: loss {key} became {values[bad]} at iteration {bad}; training stopped "
                f"(scales 0..{n - 1} are kept); lower the learning rates or noise_amp"
                if n > 0
                else f"scale 0: loss {key} became {values[bad]} at iteration {bad}; training stopped; "
                "lower the learning rates or noise_amp"
            )


@dataclass
class Member:
    """One model being trained: its pyramid, its random stream and its finished scales.

    `scales` holds api.train's per-scale entries ({"G", "D", "z_opt", "real", "noise_amp",
    "losses", "seconds"}); `id`, `folder` and `record` are what singanseg.api saves it by.
    """

    id: str
    folder: Path | None
    seed: int
    gen: torch.Generator
    reals: list[torch.Tensor]
    spec: ScaleSpec
    record: dict[str, Any]  # model.json fields fixed for the run (saved_model.model_record)
    scales: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple(tuple(r.shape[2:]) for r in self.reals)


def pad(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(x, (p, p, p, p)) if p else x


def _noise(draws: Sequence[torch.Tensor], nc: int, device) -> torch.Tensor:
    """The K models' draws side by side on the channels; a 1-channel draw (the coarsest
    scale, paper.md s1) is expanded to nc_z. Drawn on the CPU generator (the reference's
    stream), then moved."""
    return torch.cat([z.expand(1, nc, *z.shape[2:]) for z in draws], 1).to(device)


def _per_channel(amps: Sequence[float], nc: int, like: torch.Tensor) -> torch.Tensor:
    # one value per channel, in the data's dtype: the product the reference computes with a
    # python-float scalar (which torch casts to the tensor's dtype; bit-identical)
    t = torch.tensor(amps, dtype=like.dtype).repeat_interleave(nc).view(1, -1, 1, 1)
    return t.to(like.device)


def _means(out: torch.Tensor, k: int) -> torch.Tensor:
    """Per-model mean of a (1, k*c, h, w) map: `.mean()` of each model's map, as one kernel
    (a per-model loop costs k launches on a GPU; at k = 1 it is `.mean()` to the bit)."""
    return out.reshape(k, -1).mean(1)


@dataclass
class Frozen:
    """The trained coarser scales of the K models, stacked (eval mode, no gradients)."""

    Gs: list[nn.Module]
    Zs: list[torch.Tensor]  # padded reconstruction noise per scale, (1, K*nc_z, h, w)
    amps: list[torch.Tensor]  # noise_amp per scale, one value per channel


def draw_concat(
    frozen: Frozen, shapes, mode: str, cfg: SinGANConfig, scale_factor: float, gens, device
) -> torch.Tensor:
    """The coarser scales' output, upsampled to the current scale (training.py::draw_concat).

    'rand': fresh noise at every coarser scale, each model's from its own generator; 'rec':
    the fixed z_opt. Returns (1, K*nc_z, h, w) of scale len(frozen.Gs), unpadded; zeros at
    the coarsest scale.
    """
    nc, p = cfg.nc_z, cfg.pad
    G_z = torch.zeros(1, len(gens) * nc, *shapes[0], device=device)
    with torch.no_grad():
        for k, (G, Z_opt, amp) in enumerate(zip(frozen.Gs, frozen.Zs, frozen.amps, strict=True)):
            h, w = shapes[k]
            if mode == "rand":
                c = 1 if k == 0 else nc
                z = pad(_noise([torch.randn(1, c, h, w, generator=g) for g in gens], nc, device), p)
            else:
                z = Z_opt
            G_z = pad(G_z[:, :, :h, :w], p)
            G_z = G(amp * z + G_z, G_z)
            G_z = imresize(G_z, 1 / scale_factor, cfg.resize)
            G_z = G_z[:, :, : shapes[k + 1][0], : shapes[k + 1][1]]
    return G_z


def gradient_penalty(netD, real, fake, cfg: SinGANConfig, gens) -> torch.Tensor:
    """WGAN-GP per model (functions.py::calc_gradient_penalty): ONE interpolation scalar per
    model (the reference's one per batch), the norm over the model's channels; shape (K,)."""
    k = len(gens)
    a = torch.cat([torch.rand(1, 1, generator=g) for g in gens]).to(real.device)
    a = a.view(1, k, 1, 1).repeat_interleave(cfg.nc_im, 1).expand(real.size())
    interpolates = (a * real + (1 - a) * fake.detach()).requires_grad_(True)
    out = netD(interpolates)
    grads = torch.autograd.grad(out, interpolates, torch.ones_like(out), create_graph=True)[0]
    norms = grads.reshape(k, cfg.nc_im, *grads.shape[2:]).norm(2, dim=1)
    return _means((norms - 1) ** 2, k) * cfg.lambda_grad


@contextlib.contextmanager
def bn_repeat(module: nn.Module, times: int) -> Iterator[None]:
    """One forward updates BatchNorm running stats as `times` identical forwards would.

    r <- (1-m) r + m s applied `times` times with the same s is r <- (1-m)^t r + (1-(1-m)^t) s.
    """
    bns = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None
    ]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1 - (1 - m.momentum) ** times
    try:
        yield
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
            if m.num_batches_tracked is not None and module.training:
                m.num_batches_tracked.add_(times - 1)


def rec_step(netG, Z_opt, z_prev, real, cfg: SinGANConfig, k: int, repeat: int) -> torch.Tensor:
    """alpha * MSE(G(noise_amp * z_opt + z_prev), real) per model, backpropagated; shape (K,)."""
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


def make_optimizers(netD: nn.Module, netG: nn.Module, cfg: SinGANConfig):
    """Adam (beta1, 0.999) and MultiStepLR([lr_milestone], gamma) for D and G (training.py)."""
    impl = {"fused": True} if cfg.adam_impl == "fused" else {"foreach": False, "fused": False}
    optD = torch.optim.Adam(netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999), **impl)
    optG = torch.optim.Adam(netG.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999), **impl)
    schedD = torch.optim.lr_scheduler.MultiStepLR(
        optD, milestones=[cfg.lr_milestone], gamma=cfg.gamma
    )
    schedG = torch.optim.lr_scheduler.MultiStepLR(
        optG, milestones=[cfg.lr_milestone], gamma=cfg.gamma
    )
    return optD, optG, schedD, schedG


@dataclass
class Scale:
    """Scale n of K models, ready to train: nets, optimisers and the fixed tensors.

    The reference recomputes some of these per step; they are fixed for the scale.
    """

    n: int
    gens: list[torch.Generator]
    shapes: tuple[tuple[int, int], ...]
    scale_factor: float
    netD: nn.Module
    netG: nn.Module
    optD: torch.optim.Optimizer
    optG: torch.optim.Optimizer
    schedD: Any
    schedG: Any
    frozen: Frozen
    real: torch.Tensor  # (1, K*C, h, w)
    z_prev: torch.Tensor  # padded 'rec' input from the coarser scales (zeros at the coarsest)
    noise_amps: list[float]  # 1 at the coarsest, noise_amp * RMSE(real, rec) above, per model
    amp: torch.Tensor  # noise_amps, one value per channel

    @property
    def k(self) -> int:
        return len(self.gens)

    @property
    def coarsest(self) -> bool:
        return self.n == 0

    def draw_prev(self, cfg: SinGANConfig) -> torch.Tensor:
        """A fresh padded 'rand' image from the coarser scales."""
        dev = self.real.device
        return pad(draw_concat(self.frozen, self.shapes, "rand", cfg, self.scale_factor, self.gens, dev), cfg.pad)


def init_scale(n: int, members: Sequence[Member], cfg: SinGANConfig, device) -> Scale:
    """Initialise scale n of every member (all with n finished scales and one pyramid's shapes):
    training.py::train, one pass of its while loop, up to train_single_scale's loop.

    Per model, in its own stream: init_models' draws, the weights of scale n-1 copied in when
    nfc is unchanged, the reference's unused `fixed_noise` draw.
    """
    k, nc, p = len(members), cfg.nc_z, cfg.pad
    shapes, scale_factor = members[0].shapes, members[0].spec.scale_factor
    copy = n > 0 and cfg.nfc_at(n - 1)[0] == cfg.nfc_at(n)[0]
    states_D, states_G = [], []
    for m in members:
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
    frozen = Frozen(
        [stacked(GeneratorConcatSkip2CleanAdd, cfg, j, [m.scales[j]["G"].state_dict() for m in members], device)
         .eval().requires_grad_(False) for j in range(n)],
        [torch.cat([m.scales[j]["z_opt"] for m in members], 1).to(device) for j in range(n)],
        [_per_channel([m.scales[j]["noise_amp"] for m in members], nc, real) for j in range(n)],
    )  # fmt: skip
    gens = [m.gen for m in members]
    z_prev = draw_concat(frozen, shapes, "rec", cfg, scale_factor, gens, device)
    if n == 0:
        amps = [1.0] * k
    else:
        amps = [
            float(cfg.noise_amp * torch.sqrt(F.mse_loss(r, z)))
            for r, z in zip(real.chunk(k, 1), z_prev.chunk(k, 1), strict=True)
        ]
    optD, optG, schedD, schedG = make_optimizers(netD, netG, cfg)
    return Scale(n, gens, shapes, scale_factor, netD, netG, optD, optG, schedD, schedG, frozen,
                 real, pad(z_prev, p), amps, _per_channel(amps, nc, real))  # fmt: skip


def critic_step(s: Scale, noise: torch.Tensor, prev: torch.Tensor, cfg: SinGANConfig, keep_graph: bool = False):
    """One WGAN-GP critic step (training.py's D loop body); returns (fake, errD_real, errD_fake, gp),
    the losses per model.

    `keep_graph`: make `fake` with its autograd graph (the last step's fake is reused by the
    generator passes in `accumulate` mode). The reference draws `prev` before G's forward and
    after D(real)'s backward; no random numbers are drawn in between, so the order is the same.
    """
    netD, k = s.netD, s.k
    s.optD.zero_grad(set_to_none=True)
    errD_real = -_means(netD(s.real), k)
    errD_real.sum().backward()
    with torch.set_grad_enabled(keep_graph):
        fake = s.netG(noise, prev)
    errD_fake = _means(netD(fake.detach()), k)
    errD_fake.sum().backward()
    gp = gradient_penalty(netD, s.real, fake, cfg, s.gens)
    gp.sum().backward()
    s.optD.step()
    return fake, errD_real, errD_fake, gp


def train_iterations(s: Scale, cfg: SinGANConfig, progress=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Train the scale for cfg.niter iterations: (padded z_opt, losses (niter, K) per key)."""
    k, nc, p, gens, dev = s.k, cfg.nc_z, cfg.pad, s.gens, s.real.device
    netD, netG, optG = s.netD, s.netG, s.optG
    h, w = s.shapes[s.n]
    zeros = torch.zeros(1, k * nc, h + 2 * p, w + 2 * p, device=dev)
    z_opt, prev, z_prev, amp = zeros, zeros, s.z_prev, s.amp
    hist: dict[str, list[torch.Tensor]] = {key: [] for key in LOSS_KEYS}
    accumulate = cfg.g_steps_mode == "accumulate"
    for epoch in range(cfg.niter):
        if s.coarsest:  # per model: z_opt then the noise, both one channel
            draws = [(torch.randn(1, 1, h, w, generator=g), torch.randn(1, 1, h, w, generator=g)) for g in gens]
            z_opt = pad(_noise([d[0] for d in draws], nc, dev), p)
            noise_ = pad(_noise([d[1] for d in draws], nc, dev), p)
        else:
            noise_ = pad(_noise([torch.randn(1, nc, h, w, generator=g) for g in gens], nc, dev), p)

        # (1) critic: maximise D(x) - D(G(z)) with the gradient penalty
        for j in range(cfg.Dsteps):
            prev = zeros if s.coarsest else s.draw_prev(cfg)
            noise = noise_ if s.coarsest else amp * noise_ + prev
            keep_graph = accumulate and j == cfg.Dsteps - 1
            fake, errD_real, errD_fake, gp = critic_step(s, noise, prev, cfg, keep_graph)
        errD = errD_real.detach() + errD_fake.detach() + gp.detach()
        D_x, D_G_z = -errD_real.detach(), errD_fake.detach()

        # (2) generator: maximise D(G(z)) + alpha * reconstruction
        Z_opt = amp * z_opt + z_prev
        if accumulate:
            optG.zero_grad(set_to_none=True)
            with bn_repeat(netD, cfg.Gsteps):
                errG = -_means(netD(fake), k)
            errG.sum().backward(inputs=list(netG.parameters()))
            rec_loss = rec_step(netG, Z_opt, z_prev, s.real, cfg, k, repeat=cfg.Gsteps)
            optG.step()
        else:
            for _ in range(cfg.Gsteps):
                optG.zero_grad(set_to_none=True)
                fake = netG(noise, prev)
                errG = -_means(netD(fake), k)
                errG.sum().backward(inputs=list(netG.parameters()))
                rec_loss = rec_step(netG, Z_opt, z_prev, s.real, cfg, k, repeat=1)
                optG.step()
        if cfg.snapshot_every and (epoch % cfg.snapshot_every == 0 or epoch == cfg.niter - 1):
            with torch.no_grad():  # the reference's sample-image forward (BatchNorm stats only)
                netG(Z_opt, z_prev)

        for key, v in zip(
            LOSS_KEYS, (errD, errG.detach() + rec_loss, rec_loss, D_x, D_G_z), strict=True
        ):
            hist[key].append(v)
        s.schedD.step()
        s.schedG.step()
        if progress is not None:
            progress.update(1)
            if epoch % 25 == 0 or epoch == cfg.niter - 1:  # the mean over the models
                progress.set_postfix(
                    errD=f"{float(errD.mean()):.3f}",
                    errG=f"{float(errG.detach().mean()):.3f}",  # no requires_grad UserWarning
                    rec=f"{float(rec_loss.mean()):.4f}",
                )
    return z_opt, {key: torch.stack(v).float().cpu() for key, v in hist.items()}


def train_scale(
    n: int, members: Sequence[Member], cfg: SinGANConfig, device="cpu", progress=None
) -> list[dict[str, Any]]:
    """Initialise, train and freeze scale n of every member; one api.train scale entry per
    member ({"G", "D" (frozen, CPU), "z_opt", "real", "noise_amp", "losses", "seconds"}).

    The members need n finished scales and the same pyramid shapes (K = 1: any model).
    """
    t0 = time.perf_counter()
    s = init_scale(n, members, cfg, device)
    z_opt, losses = train_iterations(s, cfg, progress)
    seconds = time.perf_counter() - t0
    k = s.k
    Gs, Ds = unstack_state(s.netG.state_dict(), k), unstack_state(s.netD.state_dict(), k)
    return [
        {
            "G": frozen_copy(GeneratorConcatSkip2CleanAdd, cfg, n, Gs[i]),
            "D": frozen_copy(WDiscriminator, cfg, n, Ds[i]),
            "z_opt": z.detach().cpu().clone(),
            "real": m.reals[n],
            "noise_amp": s.noise_amps[i],
            "losses": {key: v[:, i].tolist() for key, v in losses.items()},
            "seconds": seconds,
        }
        for i, (m, z) in enumerate(zip(members, z_opt.chunk(k, 1), strict=True))
    ]


__all__ = [
    "LOSS_KEYS",
    "Member",
    "NonFiniteLossError",
    "bn_repeat",
    "check_losses_finite",
    "draw_concat",
    "gradient_penalty",
    "init_scale",
    "make_optimizers",
    "pad",
    "rec_step",
    "train_iterations",
    "train_scale",
]
