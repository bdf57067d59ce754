"""The per-scale SinGAN-Seg training loop (paper.md s1; anchors.md s2.1).

Follows the authors' `SinGAN/training.py` (singan_seg_polyp 1.0.7) step for step and draws
its random numbers in the same order from an explicit `torch.Generator`, so that a run
seeded like the reference's global RNG reproduces it (tests/test_singan_equivalence.py):

- per iteration: fresh noise (one channel expanded to nc_z at the coarsest scale, where the
  reconstruction noise z_opt is also redrawn every iteration, as the reference does);
- Dsteps critic steps: -D(real), D(G(noise, prev)) with a fresh 'rand' draw of `prev`
  through the frozen coarser generators, WGAN-GP with one interpolation scalar per batch
  (lambda_grad 0.1, gradient norm over channels);
- Gsteps generator passes: -D(fake) + alpha * MSE(G(noise_amp*z_opt + z_prev), real).
  `accumulate` (the paper's code): `netG.zero_grad()` opens every pass and one
  `optimizerG.step()` follows the loop, so only the last pass's gradients reach the step;
  the passes are identical (same fake, same weights), so we run one and replay the
  BatchNorm running-statistics updates of the other two (docs/deviations/singan.md).
  `per_step` (original SinGAN): a step per pass, with `fake` regenerated from the current
  weights (needed since PyTorch 1.5, tamarott/SinGAN#148).

Speed without changing the algorithm: the 'rec' chain is computed once per scale (it is
fixed), pyramid and padding are precomputed, the frozen chain runs under no_grad, the
first Dsteps-1 fakes are made without an autograd graph (only the last one is reused by the
generator passes), and the resize is a pair of matmuls (`resize: torch`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from singanseg.config import SinGANConfig
from singanseg.imresize import imresize
from singanseg.networks import GeneratorConcatSkip2CleanAdd, WDiscriminator, init_models

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
class Frozen:
    """The trained coarser scales that feed the current one (eval mode, no gradients)."""

    Gs: list[GeneratorConcatSkip2CleanAdd] = field(default_factory=list)
    Zs: list[torch.Tensor] = field(default_factory=list)  # padded reconstruction noise per scale
    noise_amps: list[float] = field(default_factory=list)


def pad(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(x, (p, p, p, p)) if p else x


def draw_concat(
    frozen: Frozen,
    reals: list[torch.Tensor],
    mode: str,
    cfg: SinGANConfig,
    scale_factor: float,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """The coarser scales' output, upsampled to the current scale (training.py::draw_concat).

    'rand': fresh noise at every coarser scale; 'rec': the fixed z_opt. Returns (1, C, h, w)
    of reals[len(frozen.Gs)], unpadded; zeros at the coarsest scale.
    """
    n = len(frozen.Gs)
    G_z = torch.zeros(1, cfg.nc_z, *reals[0].shape[2:], device=reals[0].device)
    if n == 0:
        return G_z
    p = cfg.pad
    with torch.no_grad():
        for k, (G, Z_opt, amp) in enumerate(
            zip(frozen.Gs, frozen.Zs, frozen.noise_amps, strict=True)
        ):
            h, w = reals[k].shape[2:]
            if mode == "rand":
                # drawn on the CPU generator (the reference's stream), then moved
                z = torch.randn(1, 1 if k == 0 else cfg.nc_z, h, w, generator=gen).to(G_z.device)
                z = pad(z.expand(1, cfg.nc_z, h, w), p)
            else:
                z = Z_opt
            G_z = pad(G_z[:, :, :h, :w], p)
            G_z = G(amp * z + G_z, G_z)
            G_z = imresize(G_z, 1 / scale_factor, cfg.resize)
            G_z = G_z[:, :, : reals[k + 1].shape[2], : reals[k + 1].shape[3]]
    return G_z


def gradient_penalty(
    netD: WDiscriminator,
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_grad: float,
    gen: torch.Generator | None,
) -> torch.Tensor:
    """WGAN-GP with ONE interpolation scalar for the batch and the norm over channels (functions.py)."""
    a = torch.rand(1, 1, generator=gen).to(real.device).expand(real.size())
    interpolates = (a * real + (1 - a) * fake.detach()).requires_grad_(True)
    out = netD(interpolates)
    grads = torch.autograd.grad(out, interpolates, torch.ones_like(out), create_graph=True)[0]
    return ((grads.norm(2, dim=1) - 1) ** 2).mean() * lambda_grad


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


@dataclass
class ScaleInputs:
    """Fixed tensors of one scale, computed once (the reference recomputes some per step)."""

    real: torch.Tensor  # (1, C, h, w)
    z_prev: torch.Tensor  # padded 'rec' input from the coarser scales (zeros at the coarsest)
    noise_amp: float  # 1 at the coarsest, noise_amp * RMSE(real, rec) above (training.py)
    coarsest: bool


def scale_inputs(
    frozen: Frozen, reals: list[torch.Tensor], cfg: SinGANConfig, scale_factor: float
) -> ScaleInputs:
    n = len(frozen.Gs)
    real = reals[n]
    z_prev = draw_concat(frozen, reals, "rec", cfg, scale_factor)
    if n == 0:
        amp = 1.0
    else:
        amp = float(cfg.noise_amp * torch.sqrt(F.mse_loss(real, z_prev)))
    return ScaleInputs(real=real, z_prev=pad(z_prev, cfg.pad), noise_amp=amp, coarsest=n == 0)


def critic_step(
    netD: WDiscriminator,
    netG: GeneratorConcatSkip2CleanAdd,
    optD: torch.optim.Optimizer,
    real: torch.Tensor,
    noise: torch.Tensor,
    prev: torch.Tensor,
    cfg: SinGANConfig,
    gen: torch.Generator | None,
    keep_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One WGAN-GP critic step (training.py's D loop body); returns (fake, errD_real, errD_fake, gp).

    `keep_graph`: make `fake` with its autograd graph (the last step's fake is reused by the
    generator passes in `accumulate` mode). The reference draws `prev` before G's forward and
    after D(real)'s backward; no random numbers are drawn in between, so the order is the same.
    """
    optD.zero_grad(set_to_none=True)
    errD_real = -netD(real).mean()
    errD_real.backward()
    with torch.set_grad_enabled(keep_graph):
        fake = netG(noise, prev)
    errD_fake = netD(fake.detach()).mean()
    errD_fake.backward()
    gp = gradient_penalty(netD, real, fake, cfg.lambda_grad, gen)
    gp.backward()
    optD.step()
    return fake, errD_real, errD_fake, gp


def train_single_scale(
    netD: WDiscriminator,
    netG: GeneratorConcatSkip2CleanAdd,
    optD: torch.optim.Optimizer,
    optG: torch.optim.Optimizer,
    schedD,
    schedG,
    inputs: ScaleInputs,
    draw_prev: Callable[[], torch.Tensor],
    cfg: SinGANConfig,
    gen: torch.Generator,
    progress=None,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Train one scale for cfg.niter iterations; returns (padded z_opt, per-iteration losses).

    `draw_prev()` returns a fresh padded 'rand' image from the coarser scales (ignored at the
    coarsest scale). A function of models, optimisers and tensors, so it can be batched.
    """
    real, z_prev, noise_amp, p = inputs.real, inputs.z_prev, inputs.noise_amp, cfg.pad
    _, _, h, w = real.shape
    dev = real.device
    zeros = torch.zeros(1, cfg.nc_z, h + 2 * p, w + 2 * p, device=dev)
    z_opt = zeros
    hist: dict[str, list[torch.Tensor]] = {k: [] for k in LOSS_KEYS}
    accumulate = cfg.g_steps_mode == "accumulate"
    for epoch in range(cfg.niter):
        if inputs.coarsest:
            z_opt = pad(torch.randn(1, 1, h, w, generator=gen).to(dev).expand(1, cfg.nc_z, h, w), p)
            noise_ = pad(
                torch.randn(1, 1, h, w, generator=gen).to(dev).expand(1, cfg.nc_z, h, w), p
            )
        else:
            noise_ = pad(torch.randn(1, cfg.nc_z, h, w, generator=gen).to(dev), p)

        # (1) critic: maximise D(x) - D(G(z)) with the gradient penalty
        for j in range(cfg.Dsteps):
            prev = zeros if inputs.coarsest else draw_prev()
            noise = noise_ if inputs.coarsest else noise_amp * noise_ + prev
            keep_graph = accumulate and j == cfg.Dsteps - 1
            fake, errD_real, errD_fake, gp = critic_step(
                netD, netG, optD, real, noise, prev, cfg, gen, keep_graph
            )
        errD = errD_real.detach() + errD_fake.detach() + gp.detach()
        D_x, D_G_z = -errD_real.detach(), errD_fake.detach()

        # (2) generator: maximise D(G(z)) + alpha * reconstruction
        Z_opt = noise_amp * z_opt + z_prev
        if accumulate:
            optG.zero_grad(set_to_none=True)
            with bn_repeat(netD, cfg.Gsteps):
                errG = -netD(fake).mean()
            errG.backward(inputs=list(netG.parameters()))
            rec_loss = _rec_step(netG, Z_opt, z_prev, real, cfg, repeat=cfg.Gsteps)
            optG.step()
        else:
            for _ in range(cfg.Gsteps):
                optG.zero_grad(set_to_none=True)
                fake = netG(noise, prev)
                errG = -netD(fake).mean()
                errG.backward(inputs=list(netG.parameters()))
                rec_loss = _rec_step(netG, Z_opt, z_prev, real, cfg, repeat=1)
                optG.step()
        if cfg.snapshot_every and (epoch % cfg.snapshot_every == 0 or epoch == cfg.niter - 1):
            with torch.no_grad():  # the reference's sample-image forward (BatchNorm stats only)
                netG(Z_opt, z_prev)

        for k, v in zip(
            LOSS_KEYS, (errD, errG.detach() + rec_loss, rec_loss, D_x, D_G_z), strict=True
        ):
            hist[k].append(v)
        schedD.step()
        schedG.step()
        if progress is not None:
            progress.update(1)
            if epoch % 25 == 0 or epoch == cfg.niter - 1:
                progress.set_postfix(
                    errD=f"{float(errD.detach()):.3f}",
                    errG=f"{float(errG.detach()):.3f}",  # no requires_grad UserWarning
                    rec=f"{float(rec_loss.detach()):.4f}",
                )
    losses = {k: torch.stack(v).float().tolist() for k, v in hist.items()}
    return z_opt, losses


def _rec_step(netG, Z_opt, z_prev, real, cfg: SinGANConfig, repeat: int) -> torch.Tensor:
    if cfg.alpha == 0:
        return torch.zeros((), device=real.device)
    with bn_repeat(netG, repeat):
        rec = cfg.alpha * F.mse_loss(netG(Z_opt, z_prev), real)
    rec.backward()
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
class ScaleResult:
    netG: GeneratorConcatSkip2CleanAdd
    netD: WDiscriminator
    z_opt: torch.Tensor
    noise_amp: float
    losses: dict[str, list[float]]
    seconds: float


def train_scale(
    n: int,
    frozen: Frozen,
    reals: list[torch.Tensor],
    cfg: SinGANConfig,
    scale_factor: float,
    gen: torch.Generator,
    prev_nets: tuple[dict, dict] | None = None,
    progress_factory: Callable[[int], object] | None = None,
) -> ScaleResult:
    """Initialise, train and freeze scale n (training.py::train, one pass of its while loop).

    `prev_nets` = (netD, netG) state dicts of scale n-1: copied in when nfc is unchanged.
    """
    t0 = time.perf_counter()
    dev = reals[0].device
    netD, netG = init_models(cfg, n, gen)
    netD, netG = netD.to(dev), netG.to(dev)
    if n > 0 and prev_nets is not None and cfg.nfc_at(n - 1)[0] == cfg.nfc_at(n)[0]:
        netD.load_state_dict(prev_nets[0])
        netG.load_state_dict(prev_nets[1])
    h, w = reals[n].shape[2:]
    torch.randn(1, cfg.nc_z, h, w, generator=gen)  # the reference's unused `fixed_noise` draw
    inputs = scale_inputs(frozen, reals, cfg, scale_factor)
    optD, optG, schedD, schedG = make_optimizers(netD, netG, cfg)
    p = cfg.pad

    def draw_prev() -> torch.Tensor:
        return pad(draw_concat(frozen, reals, "rand", cfg, scale_factor, gen), p)

    bar = progress_factory(n) if progress_factory else None
    try:
        z_opt, losses = train_single_scale(
            netD, netG, optD, optG, schedD, schedG, inputs, draw_prev, cfg, gen, bar
        )
    finally:
        if bar is not None:
            bar.close()
    check_losses_finite(losses, n)
    for net in (netG, netD):
        net.eval()
        net.requires_grad_(False)
    return ScaleResult(netG, netD, z_opt, inputs.noise_amp, losses, time.perf_counter() - t0)
