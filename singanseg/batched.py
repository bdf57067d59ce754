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

Output: the folders singanseg.api.train writes (scale_<n>.safetensors/json with the
model's rng state, model.json after every finished scale); `api.load` reads them and
`api.train` resumes them. Partial models are resumed batched: they are bucketed by
(pyramid shapes, scale_factor, finished scales), so those that stopped at the same scale
continue together from their saved random streams.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.executors import Skipped, TaskResult, _describe
from singanseg.api import IncompatibleModelError, _read_inputs
from singanseg.config import SinGANConfig
from singanseg.imresize import imresize
from singanseg.io import Pair, list_pairs
from singanseg.many import image_seed
from singanseg.model import (
    MODEL_JSON,
    config_of,
    load_scale,
    read_model_json,
    save_scale,
    write_model_json,
)
from singanseg.models import GeneratorConcatSkip2CleanAdd, WDiscriminator, init_models
from singanseg.pyramid import ScaleSpec, build_pyramid
from singanseg.training import LOSS_KEYS, bn_repeat, make_optimizers, pad
from singanseg.typed import ConfigError, to_mapping

log = logging.getLogger(__name__)


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


# --- model folders: the checks and records of singanseg.api.train ----------------------


def _write_record(m: Member, complete: bool) -> None:
    """model.json with api.train's fields (tests/test_batched.py compares the two)."""
    s = m.scales
    write_model_json(
        m.folder,
        {
            **m.record,
            "finished_scales": len(s),
            "complete": complete,
            "noise_amp": [x["noise_amp"] for x in s],
            "losses": [
                {key: {"first": v[0], "last": v[-1]} for key, v in x["losses"].items() if v}
                for x in s
            ],
            "seconds": [x["seconds"] for x in s],
        },
    )


def prepare(
    pair: Pair, folder: Path, cfg: SinGANConfig, seed: int | None, on_incompatible: str = "error"
):
    """A Member ready to train from its next scale, or Skipped when its model is complete.

    Same rules as singanseg.many.train_one + singanseg.api.train: a complete model of the
    same config and seed is skipped unread; another config, seed or input raises
    IncompatibleModelError (or, with on_incompatible 'retrain', the folder is replaced).
    """
    meta = None
    if (folder / MODEL_JSON).exists():
        meta = read_model_json(folder)
        same = config_of(meta, folder) == cfg and (seed is None or int(meta["seed"]) == seed)
        if meta["complete"] and same:
            return Skipped({"seed": int(meta["seed"]), "scales": int(meta["finished_scales"])})
    rgba, where = _read_inputs(pair.image, pair.mask)
    input_sha = hashlib.sha256(
        np.ascontiguousarray(rgba).tobytes() + str(rgba.shape).encode()
    ).hexdigest()
    reals, spec = build_pyramid(rgba, cfg, where)
    gen, scales = torch.Generator(), []
    if meta is not None:
        problems = []
        if config_of(meta, folder) != cfg:
            new, old = to_mapping(cfg), to_mapping(config_of(meta, folder))
            problems.append(
                f"config differs (stored, requested): { {k: (v, new[k]) for k, v in old.items() if new[k] != v} }"
            )
        if seed is not None and int(meta["seed"]) != seed:
            problems.append(f"seed {meta['seed']} != {seed}")
        if meta["input_sha256"] != input_sha:
            problems.append("it was trained on another image/mask")
        if problems and on_incompatible != "retrain":
            raise IncompatibleModelError(
                f"{folder / MODEL_JSON}: incompatible with this request: {'; '.join(problems)}; "
                f"use another --out or delete the folder"
            )
        if problems:
            shutil.rmtree(folder)
            meta = None
    if meta is not None:
        seed = int(meta["seed"])
        scales = [load_scale(folder, n, cfg) for n in range(int(meta["finished_scales"]))]
        if scales:
            gen.set_state(scales[-1]["rng_state"])
        else:
            gen.manual_seed(seed)
    else:
        seed = secrets.randbelow(10_000) + 1 if seed is None else int(seed)  # post_config
        gen.manual_seed(seed)
    record = {
        "config": to_mapping(cfg),
        "seed": seed,
        "input_sha256": input_sha,
        "input_shape": list(rgba.shape),
        "pyramid": {
            "scale1": spec.scale1,
            "stop_scale": spec.stop_scale,
            "scale_factor": spec.scale_factor,
            "num_scales": spec.num_scales,
            "shapes": [list(r.shape[2:]) for r in reals],
        },
        "z_opt": "tensor 'z_opt' of scale_<n>.safetensors (padded; zeros above the coarsest scale)",
    }
    m = Member(pair.id, folder, seed, gen, reals, spec, record, scales, resumed=bool(scales))
    folder.mkdir(parents=True, exist_ok=True)
    if not scales:
        _write_record(m, False)
    return m


def bucket_key(m: Member) -> tuple:
    """Models train together when their pyramids (shapes, scale_factor) and next scale agree."""
    return (m.shapes, m.spec.scale_factor, len(m.scales))


def train_group(
    members: list[Member], cfg: SinGANConfig, device, progress: bool = False, on_scale=None
) -> None:
    """Train one bucket chunk to the finest scale, saving every model after every scale."""
    bar = None
    for n in range(len(members[0].scales), len(members[0].reals)):
        members = [m for m in members if m.error is None]
        if not members:
            return
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.niter, desc=f"{len(members)} models, scale {n}", leave=False)
        try:
            results = train_scale_batched(n, members, cfg, device, bar)
        except Exception as e:  # noqa: BLE001 - reported per model; other chunks go on
            for m in members:
                m.error = (
                    f"batched training of {len(members)} models at scale {n} failed: {_describe(e)}"
                )
            return
        finally:
            if bar is not None:
                bar.close()
        for m, r in zip(members, results, strict=True):
            try:
                save_scale(m.folder, n, r["G"], r["D"], r["z_opt"], r["real"], r["noise_amp"],
                           m.gen, r["losses"], r["seconds"])  # fmt: skip
                m.scales.append(r)
                _write_record(m, n == len(m.reals) - 1)
                m.seconds += r["seconds"]
                if on_scale is not None:
                    on_scale(m.id, n, {"seconds": r["seconds"], "noise_amp": r["noise_amp"],
                                       **{f"{k}_last": v[-1] for k, v in r["losses"].items() if v}})  # fmt: skip
            except Exception as e:  # noqa: BLE001
                m.error = _describe(e)


def train_batched(
    pairs_or_data_dir: Sequence[Pair] | str | os.PathLike,
    out_dir: str | os.PathLike,
    config: SinGANConfig | None = None,
    seed: int | None = None,
    batch: int = 8,
    *,
    on_incompatible: str = "error",
    device: str | torch.device | None = None,
    progress: bool = False,
    on_scale: Callable[[str, int, dict], None] | None = None,
) -> list[TaskResult]:
    """Train `out_dir/<id>/` for every pair, `batch` models at a time; one TaskResult per pair.

    The semantics of singanseg.many.train_many (which routes `--batch K > 1` here): per-model
    seeds from `seed` and the id (many.image_seed), complete models skipped, partial ones
    resumed (batched with the others that stopped at the same scale), a pair that cannot be
    read or trained reported "failed" with its id and error while the rest finish.
    """
    cfg = config or SinGANConfig()
    cfg.validate("config")
    if batch < 1:
        raise ConfigError(f"batch: must be >= 1, got {batch}")
    if on_incompatible not in ("error", "retrain"):
        raise ConfigError(f"on_incompatible: {on_incompatible!r} is not one of 'error', 'retrain'")
    device = torch.device(device or "cpu")
    if isinstance(pairs_or_data_dir, (str, os.PathLike)):
        pairs = list_pairs(pairs_or_data_dir)
    else:
        pairs = list(pairs_or_data_dir)
    out_dir = Path(out_dir)
    results: dict[str, TaskResult] = {}
    buckets: dict[tuple, list[Member]] = {}
    for p in pairs:
        t0 = time.perf_counter()
        try:
            m = prepare(p, out_dir / p.id, cfg, image_seed(seed, p.id), on_incompatible)
        except Exception as e:  # noqa: BLE001 - one pair's failure must not sink the others
            results[p.id] = TaskResult(p.id, "failed", _describe(e), time.perf_counter() - t0)
            continue
        if isinstance(m, Skipped):
            results[p.id] = TaskResult(p.id, "skipped", None, time.perf_counter() - t0, m.value)
        else:
            m.seconds = time.perf_counter() - t0
            buckets.setdefault(bucket_key(m), []).append(m)
    for (shapes, _, start), group in buckets.items():
        log.info("bucket %s from scale %d: %d models (%s)", "/".join(f"{h}x{w}" for h, w in shapes),
                 start, len(group), ", ".join(m.id for m in group))  # fmt: skip
        for i in range(0, len(group), batch):
            chunk = group[i : i + batch]
            train_group(chunk, cfg, device, progress, on_scale)
            for m in chunk:
                if m.error is not None:
                    results[m.id] = TaskResult(m.id, "failed", m.error, m.seconds)
                    continue
                value = {"seed": m.seed, "scales": len(m.scales), "resumed": m.resumed,
                         "batch": len(chunk), "bucket": f"{shapes[-1][0]}x{shapes[-1][1]}/{len(shapes)}"}  # fmt: skip
                results[m.id] = TaskResult(m.id, "done", None, m.seconds, value)
    return [results[p.id] for p in pairs]


__all__ = [
    "Member",
    "bucket_key",
    "prepare",
    "stack_states",
    "stacked",
    "train_batched",
    "train_group",
    "train_scale_batched",
    "unstack_state",
]
