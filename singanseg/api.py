"""Python API: `train(image, mask, out)` and `load(folder)`.

`train` is idempotent (design notes, "Decisions"): a finished model is loaded, never
retrained; an unfinished one resumes after its last finished scale with the random stream
it had there; a folder trained with another config, seed or input is refused with a clear
error instead of being overwritten.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from singanseg.ckpt import CheckpointError
from singanseg.config import SinGANConfig
from singanseg.device import resolve_device
from singanseg.io import InputError, read_image, read_mask
from singanseg.pyramid import build_pyramid, to_rgba
from singanseg.saved_model import (
    MODEL_JSON,
    SinGANSeg,
    config_of,
    incompatibilities,
    input_sha256,
    is_imported,
    load_scale,
    model_record,
    progress_record,
    read_model_json,
    save_scale,
    write_model_json,
)
from singanseg.training import Frozen, train_scale
from singanseg.typed import to_mapping

log = logging.getLogger(__name__)


class IncompatibleModelError(CheckpointError):
    """The folder holds a model of another config, seed or input; nothing was changed."""


def finished_model(folder: Path, cfg: SinGANConfig, seed: int | None, image, mask) -> dict | None:
    """The one skip rule of every training path (train-many local, batched, Ray planning):
    {"seed", "scales"} when `folder` holds a COMPLETE model of this config, seed (None: any)
    and these inputs (input_sha256 of the decoded image + mask, issue 26 item 1), else None.

    A complete model of other inputs is not skipped: its trainer then finds it incompatible
    and refuses it or (on_incompatible 'retrain') replaces it. The pixels are read only when
    config and seed already match.
    """
    folder = Path(folder)
    if not (folder / MODEL_JSON).exists():
        return None
    meta = read_model_json(folder)  # a corrupted file fails the task, naming it
    if is_imported(meta):
        return _finished_import(folder, meta, cfg, image, mask)
    same = config_of(meta, folder) == cfg and (seed is None or int(meta["seed"]) == seed)
    if not (meta["complete"] and same):
        return None
    rgba, _ = read_inputs(image, mask, cfg.max_input_pixels)
    if meta["input_sha256"] != input_sha256(rgba):
        log.info("%s: complete, but trained on other image/mask bytes: not skipped", folder)
        return None
    return {"seed": int(meta["seed"]), "scales": int(meta["finished_scales"])}


def _finished_import(folder: Path, meta: dict, cfg: SinGANConfig, image, mask) -> dict:
    """An imported model (singanseg.authors) is skipped like a trained one when it has this
    config and its coarsest real is this pair's; it has no seed (None) and is never resumed
    or replaced by a training run: anything else refuses it, naming the folder."""
    from singanseg.authors import describe, input_mismatch

    problem = None
    if config_of(meta, folder) != cfg:
        stored, new = to_mapping(config_of(meta, folder)), to_mapping(cfg)
        problem = f"config differs (stored, requested): { {k: (v, new[k]) for k, v in stored.items() if new[k] != v} }"
    else:
        rgba, _ = read_inputs(image, mask, cfg.max_input_pixels)
        problem = input_mismatch(folder, rgba, cfg)
    if problem is not None:
        raise IncompatibleModelError(
            f"{folder / MODEL_JSON}: {describe(meta)}, not this request's model ({problem}); an imported model has no "
            f"critic, optimiser or random state to resume training from and is never replaced by training: "
            f"use another --out, or delete the folder to train afresh"
        )
    return {"seed": None, "scales": int(meta["finished_scales"])}


def read_inputs(image, mask, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    if isinstance(image, (str, os.PathLike)) != isinstance(mask, (str, os.PathLike)):
        raise TypeError("train: give image and mask both as paths or both as arrays")
    if isinstance(image, (str, os.PathLike)):
        # max_pixels on the header: a 225-megapixel PNG is refused before it is decoded
        img = read_image(image, max_pixels)
        msk, info = read_mask(mask, max_pixels=max_pixels)
        return to_rgba(img, msk, where=f"{mask}", ambiguous_px=info.ambiguous_px), f"{image}"
    return to_rgba(image, mask, where="input arrays"), "input arrays"


def _tqdm_factory(n_scales: int, niter: int, enabled: bool) -> Callable[[int], object] | None:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return lambda n: tqdm(
        total=niter, desc=f"scale {n}/{n_scales - 1}", leave=False, dynamic_ncols=True
    )


def train(
    image,
    mask,
    out: str | os.PathLike,
    config: SinGANConfig | None = None,
    seed: int | None = None,
    progress: bool = True,
    on_scale: Callable[[int, dict], None] | None = None,
    device: str | torch.device | None = "cpu",
) -> SinGANSeg:
    """Train (or resume, or just load) a SinGAN-Seg model of one image + mask into folder `out`.

    image, mask: paths, or uint8 arrays (H, W, 3) and (H, W) with values {0, 255}.
    `on_scale(n, summary)` is called after each newly finished scale (e.g. to log metrics).
    `device`: where training runs (`auto`, `cpu`, `cuda`, ...; singanseg.device). The noise
    is drawn on the CPU generator whatever the device, so a GPU run draws the same stream
    and its checkpoints (always written from the CPU) resume on either. The returned model
    is on `device`.
    """
    cfg = config or SinGANConfig()
    dev = resolve_device(device, "train: device")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    rgba, where = read_inputs(image, mask, cfg.max_input_pixels)
    input_sha = input_sha256(rgba)
    reals, spec = build_pyramid(rgba, cfg, where)
    shapes = [list(r.shape[2:]) for r in reals]
    reals = [r.to(dev) for r in reals]

    gen = torch.Generator()
    scales: list[dict] = []
    meta = read_model_json(out) if (out / MODEL_JSON).exists() else None
    if meta is not None and not meta["complete"] and int(meta["finished_scales"]) == 0:
        # A stub from a run that failed before its first scale holds nothing to protect;
        # refusing it would block the corrected rerun (e.g. after a bad --set).
        try:
            stale = bool(incompatibilities(meta, out, cfg, seed, input_sha))
        except CheckpointError:  # its config is not even readable by this version
            stale = True
        if stale:
            log.info("%s: replacing the record of a run that finished no scale", out / MODEL_JSON)
            meta = None
    if meta is not None:
        problems = incompatibilities(meta, out, cfg, seed, input_sha)
        if problems:
            raise IncompatibleModelError(
                f"{out / MODEL_JSON}: incompatible with this request: {'; '.join(problems)}; "
                f"use another --out or delete the folder"
            )
        seed = int(meta["seed"])
        if meta["complete"]:
            log.info("%s: already trained, not retraining", out)
            return SinGANSeg.load(out, device=dev)
        scales = [load_scale(out, n, cfg, dev) for n in range(int(meta["finished_scales"]))]
        if scales:
            gen.set_state(scales[-1]["rng_state"])
            log.info("%s: resuming after scale %d", out, len(scales) - 1)
        else:
            gen.manual_seed(seed)
    else:
        seed = (
            secrets.randbelow(10_000) + 1 if seed is None else int(seed)
        )  # post_config: randint(1, 10000)
        gen.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)

    fixed = model_record(cfg, seed, input_sha, rgba.shape, spec, shapes)

    def record(complete: bool) -> None:
        write_model_json(out, {**fixed, **progress_record(scales, complete)})

    if not scales:
        record(False)
    frozen = Frozen(
        Gs=[s["G"] for s in scales],
        Zs=[s["z_opt"] for s in scales],
        noise_amps=[s["noise_amp"] for s in scales],
    )
    bars = _tqdm_factory(len(reals), cfg.niter, progress)
    for n in range(len(scales), len(reals)):
        prev = (scales[-1]["D"].state_dict(), scales[-1]["G"].state_dict()) if scales else None
        r = train_scale(n, frozen, reals, cfg, spec.scale_factor, gen, prev, bars)
        save_scale(out, n, r.netG, r.netD, r.z_opt, reals[n], r.noise_amp, gen, r.losses, r.seconds)
        scales.append(
            {
                "G": r.netG,
                "D": r.netD,
                "z_opt": r.z_opt,
                "real": reals[n],
                "noise_amp": r.noise_amp,
                "losses": r.losses,
                "seconds": r.seconds,
            }
        )
        frozen.Gs.append(r.netG)
        frozen.Zs.append(r.z_opt)
        frozen.noise_amps.append(r.noise_amp)
        record(n == len(reals) - 1)
        if on_scale is not None:
            on_scale(
                n,
                {
                    "seconds": r.seconds,
                    "noise_amp": r.noise_amp,
                    **{f"{k}_last": v[-1] for k, v in r.losses.items() if v},
                },
            )
    if len(scales) == len(reals) and not read_model_json(out)["complete"]:
        record(True)
    return SinGANSeg.load(out, device=dev)


def load(folder: str | os.PathLike, device: str | torch.device | None = "cpu") -> SinGANSeg:
    """A trained model from its folder (never unpickles; verifies every tensor file's hash)."""
    return SinGANSeg.load(folder, device=resolve_device(device, "load: device"))
