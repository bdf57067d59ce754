"""The one small interface behind the baseline GANs (DCGAN, Progressive GAN, FastGAN).

The paper compares SinGAN-Seg with three GANs trained on 4-channel RGB+mask tensors
(`../shared/docs/paper.md` section 6; `../shared/docs/anchors.md` section 1). This module
owns what they share: the registry, the training loop with resumable checkpoints and
metrics logging, loading a trained model and writing samples; the 4-channel dataset and
the batch order live in `baselines/data.py`.

How a GAN module plugs in
-------------------------
A module `baselines/<name>.py` defines a module-level `SPEC = GANSpec(...)` with:

- `config_cls`: a frozen dataclass with the paper's defaults (comments citing paper.md /
  anchors.md). It must have the fields `resolution` (output side, px), `batch_size` and
  `checkpoint_every` (iterations); it may have `validate(self, where)`.
- `presets`: profile name -> config mapping; `singanseg.profiles.ProfilePresets("baselines",
  "<name>")` reads them from params.yaml (`paper`: the base values, the defaults').
- `make_trainer(config, device) -> Trainer`: builds G, D, EMA G and optimisers. It is
  called under `torch.manual_seed(seed)`, so weight initialisation is seeded.
- `make_sampler(config, sampler_meta) -> Sampler`: builds the (untrained) sampling network
  that `Trainer.sampler()` returns, from the config and that JSON meta.
- `total_iterations(config, num_images) -> int`.
- optional `generation_iteration(config, num_images) -> int`: after which iteration the
  sampling network is frozen into the model (default: the last; DCGAN: epoch 500).
- optional `resize`: `"squash"` (resize to resolution x resolution, as the authors'
  `transforms.Resize((s, s))`) or `"center_crop"`; optional `load_resolution(config)`:
  the side the dataset is stored at (default `config.resolution`; ProGAN stores more for
  its resize-and-crop augmentation).

`Trainer` (any object) has `nets: dict[str, nn.Module]` and `optimizers: dict[str,
Optimizer]` (all checkpointed by name), `step(real, iteration, rng) -> dict[str, float]`
(one training iteration on a float batch (B, 4, L, L) in [-1, 1] on the device; returns
the losses to log) and `sampler() -> (nn.Module, dict)` (the network to sample from, e.g.
the EMA generator, and JSON-able meta for `make_sampler`). Every random draw in `step`
must come from `rng` (a CPU `torch.Generator`; move tensors to the device afterwards):
its state is checkpointed, which makes a resumed run end in the same state as an
uninterrupted one.

`Sampler` (an `nn.Module`) has `latent(n, rng) -> Tensor` and `forward(z) -> (n, 4, R, R)`
in [-1, 1] (RGB + mask channel); `load` puts it in eval mode.

Out-folder layout written by `train`: `checkpoint.{safetensors,json}` (training state,
rewritten every `checkpoint_every` iterations) and `model.{safetensors,json}` (the
sampling network + config; its presence with `done` in the checkpoint means finished).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from baselines.data import batch_indices, load_dataset, stream_indices
from singanseg.ckpt import (
    CheckpointError,
    library_versions,
    load_module,
    load_optimizer,
    load_state,
    module_tensors,
    optimizer_tensors,
    save_state,
)
from singanseg.io import check_plain_name, write_png
from singanseg.progress import Progress
from singanseg.tracker import Tracker, or_null
from singanseg.typed import ConfigError, from_mapping, replace, to_mapping

log = logging.getLogger("baselines")

# name -> module path; imported lazily so that a GAN whose module is absent or broken does
# not stop the others from working.
GANS: dict[str, str] = {
    "dcgan": "baselines.dcgan",
    "progan": "baselines.progan",
    "fastgan": "baselines.fastgan",
}
CHECKPOINT = "checkpoint"
MODEL = "model"


class Trainer(Protocol):
    nets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def step(
        self, real: torch.Tensor, iteration: int, rng: torch.Generator
    ) -> dict[str, float]: ...

    def sampler(self) -> tuple[nn.Module, dict[str, Any]]: ...


@dataclass(frozen=True)
class GANSpec:
    name: str
    config_cls: type
    presets: Mapping[str, Mapping[str, Any]]
    make_trainer: Callable[[Any, torch.device], Trainer]
    make_sampler: Callable[[Any, Mapping[str, Any]], nn.Module]
    total_iterations: Callable[[Any, int], int]
    generation_iteration: Callable[[Any, int], int] | None = None
    resize: Literal["squash", "center_crop"] = "squash"
    load_resolution: Callable[[Any], int] | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    # FastGAN-4ch draws batches from an endless sampler (operation.py InfiniteSampler), so
    # batches cross epoch boundaries and k = 5 images train at batch 8 (paper.md s6).
    stream_batches: bool = False


def get_gan(name: str) -> GANSpec:
    """The spec of a registered GAN; unknown names and missing modules give a clear error."""
    if name not in GANS:
        raise ConfigError(f"gan: unknown GAN {name!r} (known: {', '.join(GANS)})")
    try:
        module = importlib.import_module(GANS[name])
    except ModuleNotFoundError as e:
        if e.name == GANS[name]:
            raise ConfigError(
                f"gan: {name!r} is registered but its module {GANS[name]} is not installed"
            ) from None
        raise
    return module.SPEC


def make_config(
    gan: str | GANSpec,
    profile: str = "paper",
    overrides: Mapping[str, Any] | None = None,
    where: str | None = None,
) -> Any:
    """Config of a GAN: paper defaults, then the profile's preset, then `overrides` (e.g. --set).

    `where` names the overrides' source in errors (default: the GAN's name)."""
    spec = get_gan(gan) if isinstance(gan, str) else gan
    if profile not in spec.presets:
        raise ConfigError(
            f"profile: unknown profile {profile!r} for {spec.name} (known: {', '.join(spec.presets)})"
        )
    config = from_mapping(spec.config_cls, spec.presets[profile], f"{spec.name}.{profile}")
    if overrides:
        config = replace(config, overrides, where or spec.name)
    return config


# ---------------------------------------------------------------- outputs


def to_pairs(x: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """(n, 4, H, W) in [-1, 1] -> [(uint8 RGB (H, W, 3), uint8 mask (H, W) in {0, 255})].

    The mask channel is mapped to [0, 1] and thresholded at 0.5 (paper.md section 6,
    FastGAN row: "generated mask thresholded at 0.5"), for every GAN.
    """
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    out = []
    for s in x:
        image = np.round(s[:3].transpose(1, 2, 0) * 255).astype(np.uint8)
        mask = np.where(s[3] > 0.5, 255, 0).astype(np.uint8)
        out.append((image, mask))
    return out


def write_samples(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], out_dir: str | Path, prefix: str, start: int = 0
) -> list[str]:
    """Write `images/<prefix>_<n>.png` and `masks/<prefix>_<n>.png`; returns the ids."""
    check_plain_name(prefix, "prefix")  # `../../X` would write outside out_dir
    out_dir = Path(out_dir)
    ids = []
    for n, (image, mask) in enumerate(pairs, start=start):
        sid = f"{prefix}_{n}"
        write_png(out_dir / "images" / f"{sid}.png", image)
        write_png(out_dir / "masks" / f"{sid}.png", mask)
        ids.append(sid)
    return ids


@dataclass
class BaselineModel:
    """A trained baseline GAN, ready to sample."""

    gan: str
    config: Any
    net: nn.Module
    meta: dict[str, Any]

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @torch.no_grad()
    def generate_chunks(self, n: int, seed: int = 0, chunk: int = 16) -> Iterator[torch.Tensor]:
        """(chunk, 4, R, R) tensors in [-1, 1], n in total, on the CPU.

        The latents come from one generator seeded with `seed`, drawn for all n at once, so
        the result does not depend on `chunk`; any draw a network makes from torch's global
        RNG (e.g. noise injection) is seeded with `seed` too.
        """
        if n < 1:
            raise ConfigError(f"sample: --num must be at least 1, got {n}")
        rng = torch.Generator().manual_seed(seed)
        z = self.net.latent(n, rng)
        device = next(self.net.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for i in range(0, n, chunk):
                yield self.net(z[i : i + chunk].to(device)).cpu()

    def generate(self, n: int, seed: int = 0, chunk: int = 16) -> torch.Tensor:
        return torch.cat(list(self.generate_chunks(n, seed, chunk)))

    def sample(self, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        return to_pairs(self.generate(n, seed))


def load(model_dir: str | Path, device: str | torch.device = "cpu") -> BaselineModel:
    """Load `model.{safetensors,json}` written by `train`."""
    model_dir = Path(model_dir)
    tensors, meta = load_state(model_dir, MODEL, device="cpu")
    where = str(model_dir / f"{MODEL}.json")
    gan = meta.get("gan")
    if gan not in GANS:
        raise CheckpointError(
            f"{where}: unknown or missing 'gan' {gan!r} (known: {', '.join(GANS)})"
        )
    spec = get_gan(gan)
    try:
        config = from_mapping(spec.config_cls, meta.get("config"), f"{where}: config")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    net = spec.make_sampler(config, meta.get("sampler", {}))
    load_module(net, tensors, "G", where)
    net.to(device).eval()
    return BaselineModel(gan, config, net, meta)


# ---------------------------------------------------------------- training


def _identity(spec: GANSpec, config: Any, seed: int, ids: list[str]) -> dict[str, Any]:
    return {"gan": spec.name, "config": to_mapping(config), "seed": seed, "ids": ids}


def _check_same(path: Path, meta: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    for key, value in want.items():
        have = meta.get(key)
        if have != value:
            if key == "config" and isinstance(have, Mapping):
                diff = sorted(k for k in set(value) | set(have) if value.get(k) != have.get(k))
                detail = f"config keys differ: {', '.join(diff)}"
            elif key == "ids":
                detail = f"training ids differ ({len(have or [])} saved vs {len(value)} now)"
            else:
                detail = f"{key} is {have!r}, now {value!r}"
            raise CheckpointError(
                f"{path}: was trained with other settings ({detail}); remove the folder or choose another --out"
            )


def train(
    gan: str | GANSpec,
    data_dir: str | Path,
    out_dir: str | Path,
    config: Any = None,
    seed: int = 0,
    num_images: int | None = None,
    progress: bool = True,
    tracker: Tracker | None = None,
    device: str | torch.device = "cpu",
    stop_at: int | None = None,
    log_every: int = 50,
) -> BaselineModel | None:
    """Train (or resume, or skip if finished) one baseline GAN on a folder of pairs.

    `stop_at` ends this call after that many iterations in total, with a checkpoint (for
    time-sliced jobs and the resume test); it returns None then, else the trained model.
    Losses are averaged over `log_every` iterations and logged to `tracker` if given
    (singanseg.tracker; the pipeline hands in its MLflow run).
    """
    from tqdm import tqdm

    spec = get_gan(gan) if isinstance(gan, str) else gan
    config = config if config is not None else make_config(spec)
    if hasattr(config, "validate"):
        config.validate(spec.name)
    device = torch.device(device)
    out_dir = Path(out_dir)
    load_res = spec.load_resolution(config) if spec.load_resolution else config.resolution
    data, ids = load_dataset(
        data_dir, load_res, num_images, spec.resize, min_images=1 if spec.stream_batches else config.batch_size
    )
    n = len(ids)
    total = spec.total_iterations(config, n)
    gen_iter = spec.generation_iteration(config, n) if spec.generation_iteration else total
    if not 1 <= gen_iter <= total:
        raise ConfigError(
            f"{spec.name}: generation point {gen_iter} is outside 1..{total} iterations"
        )
    identity = _identity(spec, config, seed, ids)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trainer = spec.make_trainer(config, device)
    rng = torch.Generator().manual_seed(seed)
    start = 0
    ckpt_json = out_dir / f"{CHECKPOINT}.json"
    if ckpt_json.is_file():
        tensors, meta = load_state(out_dir, CHECKPOINT)
        _check_same(ckpt_json, meta, identity)
        if meta.get("done"):
            if not (out_dir / f"{MODEL}.json").is_file():
                raise CheckpointError(
                    f"{ckpt_json}: training is finished but {out_dir / MODEL}.json is missing; remove the folder to retrain"
                )
            log.info("%s: finished model found, not retraining", out_dir)
            return load(out_dir, device)
        for name, net in trainer.nets.items():
            load_module(net, tensors, f"net.{name}", str(ckpt_json))
        for name, opt in trainer.optimizers.items():
            load_optimizer(opt, tensors, meta["optimizers"][name])
        rng.set_state(tensors["rng"])
        start = int(meta["iteration"])
        log.info("%s: resuming at iteration %d of %d", out_dir, start, total)

    end = total if stop_at is None else min(total, stop_at)
    sums: dict[str, float] = {}
    bar = tqdm(
        range(start, end),
        total=total,
        initial=start,
        desc=f"{spec.name} n{n}",
        disable=not progress,
    )
    # without the bar (a DVC stage's --no-progress), a line every 30 s a captured log keeps (issue 17)
    line = Progress(f"{spec.name} n{n}" + (f" (resumed at {start})" if start else ""), end - start, "iterations",
                    enabled=not progress)  # fmt: skip
    for it in line.iterate(bar):
        idx = (stream_indices if spec.stream_batches else batch_indices)(seed, it, n, config.batch_size)
        real = data[idx].to(device)
        losses = trainer.step(real, it, rng)
        for k, v in losses.items():
            if not np.isfinite(v):
                raise FloatingPointError(
                    f"{spec.name}: loss {k} is {v} at iteration {it}; training diverged"
                )
            sums[k] = sums.get(k, 0.0) + float(v)
        done = it + 1
        if done % log_every == 0 or done == end:
            count = (done - 1) % log_every + 1
            avg = {k: v / count for k, v in sums.items()}
            or_null(tracker).log_metrics(avg, step=done)
            bar.set_postfix({k: f"{v:.3g}" for k, v in avg.items()})
            sums = {}
        if done == gen_iter:
            _save_model(out_dir, spec, trainer, identity, done, n)
        if done % config.checkpoint_every == 0 or done == end:
            _save_checkpoint(out_dir, trainer, rng, identity, done, done >= total)
    bar.close()
    if end < total:
        return None
    return load(out_dir, device)


def _save_checkpoint(
    out_dir: Path,
    trainer: Trainer,
    rng: torch.Generator,
    identity: dict,
    iteration: int,
    done: bool,
) -> None:
    tensors: dict[str, torch.Tensor] = {"rng": rng.get_state()}
    opts = {}
    for name, net in trainer.nets.items():
        tensors.update(module_tensors(net, f"net.{name}"))
    for name, opt in trainer.optimizers.items():
        t, plain = optimizer_tensors(opt, f"opt.{name}")
        tensors.update(t)
        opts[name] = plain
    meta = {
        **identity,
        "iteration": iteration,
        "done": done,
        "optimizers": opts,
        "versions": library_versions(),
    }
    save_state(out_dir, tensors, meta, CHECKPOINT)


def _save_model(
    out_dir: Path, spec: GANSpec, trainer: Trainer, identity: dict, iteration: int, n: int
) -> None:
    net, sampler_meta = trainer.sampler()
    meta = {
        **identity,
        "iteration": iteration,
        "num_images": n,
        "sampler": sampler_meta,
        "versions": library_versions(),
    }
    save_state(out_dir, module_tensors(net, "G"), meta, MODEL)
