"""Python API: `train(image, mask, out)` and `load(folder)`.

`train` is idempotent (design notes, "Decisions"): a finished model is loaded, never
retrained; an unfinished one resumes after its last finished scale with the random stream
it had there; a folder trained with another config, seed or input is refused with a clear
error instead of being overwritten. These rules are one function, `open_model`, and the
scale loop with its saving is one, `train_members`: `singanseg train` runs them with one
model, `train-many` (singanseg.train_many, .train_many_batched) with one or K at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from singanseg.ckpt import CheckpointError
from singanseg.config import SinGANConfig
from singanseg.device import resolve_device
from singanseg.executors import Skipped, describe_error
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
from singanseg.training import Member, check_losses_finite, train_scale
from singanseg.typed import ConfigError, to_mapping

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
    if not meta["complete"]:  # (an unfinished record's config is not even read here)
        return None
    if not (config_of(meta, folder) == cfg and (seed is None or int(meta["seed"]) == seed)):
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


class ModelLock:
    """`<folder>.lock`, held while a run trains the model in `folder` (issue 26 item 9).

    Two train-many runs on one --out would otherwise both train every model (the same
    results, twice the work). An advisory `flock`: the kernel releases it when its process
    dies, so a crashed run blocks nobody; the holder deletes the file on release, so no lock
    file stays in a finished (DVC-hashed) output. Taking it re-checks that the path still
    names the file locked (a holder may have deleted it meanwhile). Local file systems and
    one machine (flock over NFS depends on the mount).
    """

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        self.path = folder.with_name(folder.name + ".lock")
        self.fd: int | None = None

    def acquire(self, wait: bool) -> bool:
        """Take the lock; `wait` False: False at once when another run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
                self.fd = fd
                return True
            os.close(fd)  # deleted by its holder while we waited: lock the path's new file

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def locked(folder: str | os.PathLike) -> Iterator[None]:
    """Hold `folder`'s ModelLock, waiting for another run that trains it to finish."""
    lock = ModelLock(folder)
    if not lock.acquire(wait=False):
        log.info("%s: another run is training it; waiting for it", folder)
        lock.acquire(wait=True)
    try:
        yield
    finally:
        lock.release()


def resumable_scales(meta: dict, folder: Path, cfg: SinGANConfig, seed: int | None) -> int:
    """The finished scales a run of this config and seed continues from, by model.json alone
    (a complete model or another config or seed: 0). open_model also checks the inputs'
    hash; the Ray planner (train_many_batched.plan_key) buckets by this without the pixels."""
    same = config_of(meta, folder) == cfg and (seed is None or int(meta["seed"]) == seed)
    return int(meta["finished_scales"]) if same and not meta["complete"] else 0


def open_model(
    image,
    mask,
    folder: str | os.PathLike,
    cfg: SinGANConfig,
    seed: int | None,
    on_incompatible: str = "error",
    model_id: str | None = None,
) -> Member | Skipped:
    """THE resume / incompatibility / seed rules of every training path (api.train, train-many
    at any --batch, locally or on Ray): a Member ready to train from its next scale, or
    Skipped({"seed", "scales"}) when `folder` holds a complete model of this request.

    - complete, same config, seed (None: any) and input bytes: skipped (`finished_model`);
    - a record of a run that finished no scale and that does not fit this request: replaced
      (it holds nothing to protect; refusing it would block the corrected rerun);
    - another config, seed or input: IncompatibleModelError, nothing changed; with
      on_incompatible 'retrain' the folder is deleted and trained afresh;
    - partial and compatible: its finished scales are loaded (CPU) and the random stream
      continues from the last one's saved state; its seed is the recorded one;
    - new: seed given, or drawn as the reference's post_config does (randint(1, 10000)).

    The folder and its first model.json are written before any training (a stub).
    """
    if on_incompatible not in ("error", "retrain"):
        raise ConfigError(f"on_incompatible: {on_incompatible!r} is not one of 'error', 'retrain'")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder; choose another --out")
    done = finished_model(folder, cfg, seed, image, mask)
    if done is not None:
        return Skipped(done)
    rgba, where = read_inputs(image, mask, cfg.max_input_pixels)
    input_sha = input_sha256(rgba)
    reals, spec = build_pyramid(rgba, cfg, where)
    meta = read_model_json(folder) if (folder / MODEL_JSON).exists() else None
    if meta is not None and not meta["complete"] and int(meta["finished_scales"]) == 0:
        try:
            stale = bool(incompatibilities(meta, folder, cfg, seed, input_sha))
        except CheckpointError:  # its config is not even readable by this version
            stale = True
        if stale:
            log.info("%s: replacing the record of a run that finished no scale", folder / MODEL_JSON)
            meta = None
    if meta is not None:
        problems = incompatibilities(meta, folder, cfg, seed, input_sha)
        if problems and on_incompatible != "retrain":
            raise IncompatibleModelError(
                f"{folder / MODEL_JSON}: incompatible with this request: {'; '.join(problems)}; "
                f"use another --out or delete the folder"
            )
        if problems:  # params or data changed: the folder's model is stale
            log.info("%s: incompatible (%s): retraining", folder, "; ".join(problems))
            shutil.rmtree(folder)
            meta = None
    gen, scales = torch.Generator(), []
    if meta is not None:
        seed = int(meta["seed"])
        scales = [load_scale(folder, n, cfg) for n in range(int(meta["finished_scales"]))]
        if scales:
            gen.set_state(scales[-1]["rng_state"])
            log.info("%s: resuming after scale %d", folder, len(scales) - 1)
        else:
            gen.manual_seed(seed)
    else:
        seed = secrets.randbelow(10_000) + 1 if seed is None else int(seed)  # post_config
        gen.manual_seed(seed)
    record = model_record(cfg, seed, input_sha, rgba.shape, spec, [list(r.shape[2:]) for r in reals])
    m = Member(model_id or folder.name, folder, seed, gen, reals, spec, record, scales, resumed=bool(scales))
    folder.mkdir(parents=True, exist_ok=True)
    if not scales:
        write_record(m, complete=False)
    return m


def write_record(m: Member, complete: bool) -> None:
    """model.json: the fixed fields and those of the finished scales (atomic)."""
    write_model_json(m.folder, {**m.record, **progress_record(m.scales, complete)})


def scale_summary(r: dict) -> dict:
    """What `on_scale` gets for a finished scale (logged as metrics by train-many's tracker)."""
    return {"seconds": r["seconds"], "noise_amp": r["noise_amp"],
            **{f"{k}_last": v[-1] for k, v in r["losses"].items() if v}}  # fmt: skip


def train_members(
    members: list[Member],
    cfg: SinGANConfig,
    device: str | torch.device = "cpu",
    progress: bool = False,
    on_scale: Callable[[str, int, dict], None] | None = None,
    raise_errors: bool = False,
) -> None:
    """Train members (one pyramid's shapes, the same finished scales) to the finest scale as
    one computation (singanseg.training.train_scale), saving every model after every scale.

    A model whose loss is not finite or whose scale cannot be saved stops (`m.error`) and
    the others go on; a failing step fails them all. `raise_errors` (one model, api.train):
    raise instead. The folder keeps the scales finished before, and resumes from them.
    """
    for m in members:  # every scale saved but the record not marked complete (a crash between)
        if m.scales and len(m.scales) == len(m.reals) and m.error is None:
            write_record(m, complete=True)
    for n in range(len(members[0].scales), len(members[0].reals)):
        members = [m for m in members if m.error is None]
        if not members:
            return
        bar = None
        if progress:
            from tqdm.auto import tqdm

            what = f", {len(members)} models" if len(members) > 1 else ""
            bar = tqdm(total=cfg.niter, desc=f"scale {n}/{len(members[0].reals) - 1}{what}",
                       leave=False, dynamic_ncols=True)  # fmt: skip
        try:
            results = train_scale(n, members, cfg, device, bar)
        except Exception as e:  # noqa: BLE001 - reported per model; other chunks go on
            if raise_errors:
                raise
            for m in members:
                m.error = f"batched training of {len(members)} models at scale {n} failed: {describe_error(e)}"
            return
        finally:
            if bar is not None:
                bar.close()
        for m, r in zip(members, results, strict=True):
            try:
                check_losses_finite(r["losses"], n)  # a diverged model stops; the others go on
                save_scale(m.folder, n, r["G"], r["D"], r["z_opt"], r["real"], r["noise_amp"],
                           m.gen, r["losses"], r["seconds"])  # fmt: skip
                m.scales.append(r)
                write_record(m, complete=n == len(m.reals) - 1)
                m.seconds += r["seconds"]
                if on_scale is not None:
                    on_scale(m.id, n, scale_summary(r))
            except Exception as e:  # noqa: BLE001
                if raise_errors:
                    raise
                m.error = describe_error(e)


def train(
    image,
    mask,
    out: str | os.PathLike,
    config: SinGANConfig | None = None,
    seed: int | None = None,
    progress: bool = True,
    on_scale: Callable[[int, dict], None] | None = None,
    device: str | torch.device | None = "cpu",
    on_incompatible: str = "error",
) -> SinGANSeg:
    """Train (or resume, or just load) a SinGAN-Seg model of one image + mask into folder `out`.

    image, mask: paths, or uint8 arrays (H, W, 3) and (H, W) with values {0, 255}.
    `on_scale(n, summary)` is called after each newly finished scale (e.g. to log metrics).
    `device`: where training runs (`auto`, `cpu`, `cuda`, ...; singanseg.device). The noise
    is drawn on the CPU generator whatever the device, so a GPU run draws the same stream
    and its checkpoints (always written from the CPU) resume on either. The returned model
    is on `device`. Resume and refusal rules: `open_model` (on_incompatible 'retrain'
    replaces a folder of another config, seed or input instead of refusing it).
    """
    cfg = config or SinGANConfig()
    dev = resolve_device(device, "train: device")
    with locked(out):  # another run training this folder: wait, then (usually) load its model
        m = open_model(image, mask, out, cfg, seed, on_incompatible)
        if isinstance(m, Skipped):
            log.info("%s: already trained, not retraining", out)
        else:
            hook = None if on_scale is None else lambda _id, n, summary: on_scale(n, summary)
            train_members([m], cfg, dev, progress, hook, raise_errors=True)
    return SinGANSeg.load(out, device=dev)


def load(folder: str | os.PathLike, device: str | torch.device | None = "cpu") -> SinGANSeg:
    """A trained model from its folder (never unpickles; verifies every tensor file's hash)."""
    return SinGANSeg.load(folder, device=resolve_device(device, "load: device"))
