"""A trained SinGAN-Seg model on disk and in memory.

Folder layout (design notes, "train_singan"): one `scale_<n>.safetensors` + `scale_<n>.json`
per finished scale (written through singanseg.ckpt: safetensors, JSON last with the
tensors' sha256, never pickle) and `model.json`, rewritten atomically after every finished
scale: config, seed, input hash, pyramid (scale1, stop_scale, scale_factor, shapes), noise
amplitudes, per-scale loss summaries, library versions, `finished_scales` and `complete`.
`model.json` is the authority: a scale file not yet listed there is retrained on resume.
Training seconds (of each scale; the clock, not the model) are kept apart, in
`scale_<n>.timing.json` and `model.timing.json` (singanseg.io.TIMING_SUFFIX).

Each scale state holds G and D (D because the next scale starts from it when nfc is
unchanged), z_opt, the scale's real image and the random generator's state after the
scale, so a resumed run continues the exact random stream of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singanseg.ckpt import (
    CheckpointError,
    library_versions,
    load_module,
    load_state,
    module_tensors,
    save_state,
)
from singanseg.config import SinGANConfig, config_from_dict
from singanseg.io import read_timing, sha256_file, write_text, write_timing
from singanseg.networks import GeneratorConcatSkip2CleanAdd, WDiscriminator
from singanseg.sample import generate, to_uint8
from singanseg.typed import ConfigError, to_mapping

MODEL_FORMAT = "singanseg-singan"
MODEL_FORMAT_VERSION = 1
MODEL_JSON = "model.json"


def scale_name(n: int) -> str:
    return f"scale_{n}"


def save_scale(
    folder: Path,
    n: int,
    netG: torch.nn.Module,
    netD: torch.nn.Module,
    z_opt: torch.Tensor,
    real: torch.Tensor,
    noise_amp: float,
    gen: torch.Generator,
    losses: dict,
    seconds: float,
) -> None:
    tensors = {
        **module_tensors(netG, "G"),
        **module_tensors(netD, "D"),
        "z_opt": z_opt,
        "real": real,
        "rng_state": gen.get_state(),
    }
    meta = {
        "scale": n,
        "noise_amp": noise_amp,
        "shape": list(real.shape[2:]),
        "losses": losses,
    }
    # the training time goes beside the scale, not into it: the folder's DVC hash must not
    # depend on the clock (singanseg.io.TIMING_SUFFIX); written first, as save_state writes
    # its JSON last
    sidecar = write_timing(folder / f"{scale_name(n)}.json", {"seconds": seconds})
    try:
        save_state(folder, tensors, meta, name=scale_name(n))
    except BaseException:
        sidecar.unlink(missing_ok=True)  # a disk-full failure left a stray scale_<n>.timing.json
        raise


def read_model_json(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / MODEL_JSON
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (not a trained SinGAN-Seg model folder)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted model metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{path}: not a SinGAN-Seg model (format {meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: model format version {meta.get('format_version')} is not supported by this version of "
            f"singanseg (expects {MODEL_FORMAT_VERSION})"
        )
    for key in (
        "config",
        "seed",
        "finished_scales",
        "pyramid",
        "noise_amp",
        "complete",
        "input_sha256",
    ):
        if key not in meta:
            raise CheckpointError(f"{path}: corrupted model metadata (key {key!r} missing)")
    return meta


def write_model_json(folder: Path, meta: dict[str, Any]) -> None:
    """model.json; its per-scale training `seconds` go to model.timing.json (read_model_timing)."""
    meta = dict(meta)
    seconds = meta.pop("seconds", None)
    record = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "versions": library_versions(),
        **meta,
    }
    # The scale records (noise_amp, shape, the tensors' sha256) are covered by model.json:
    # an edited or corrupted scale_<n>.json is refused on load, not sampled from (issue 26
    # item 3). Each is written before the model.json that lists it (save_scale, then record).
    finished = record.get("finished_scales")
    record.pop("scale_records_sha256", None)  # recomputed: a resumed record may carry an older list
    if isinstance(finished, int) and finished > 0:
        paths = [folder / f"{scale_name(n)}.json" for n in range(finished)]
        if all(p.is_file() for p in paths):
            record["scale_records_sha256"] = [sha256_file(p) for p in paths]
    if seconds is not None:
        write_timing(folder / MODEL_JSON, {"seconds": seconds})
    write_text(folder / MODEL_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_model_timing(folder: str | os.PathLike) -> list[float | None] | None:
    """Each finished scale's training seconds (model.timing.json), None where not recorded
    (a DVC checkout restores model folders without their timing sidecars)."""
    seconds = read_timing(Path(folder) / MODEL_JSON).get("seconds")
    return seconds if isinstance(seconds, list) else None


def input_sha256(rgba: np.ndarray) -> str:
    """The identity of a training input: its RGBA bytes and shape."""
    return hashlib.sha256(np.ascontiguousarray(rgba).tobytes() + str(rgba.shape).encode()).hexdigest()


def model_record(cfg: SinGANConfig, seed: int, input_sha: str, rgba_shape, spec, shapes) -> dict[str, Any]:
    """model.json's fixed fields (the config, seed, input and pyramid of a model folder)."""
    return {
        "config": to_mapping(cfg),
        "seed": seed,
        "input_sha256": input_sha,
        "input_shape": list(rgba_shape),
        "pyramid": {
            "scale1": spec.scale1,
            "stop_scale": spec.stop_scale,
            "scale_factor": spec.scale_factor,
            "num_scales": spec.num_scales,
            "shapes": [list(s) for s in shapes],
        },
        "z_opt": "tensor 'z_opt' of scale_<n>.safetensors (padded; zeros above the coarsest scale)",
    }


def progress_record(scales: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    """model.json's fields that grow with every finished scale."""
    return {
        "finished_scales": len(scales),
        "complete": complete,
        "noise_amp": [s["noise_amp"] for s in scales],
        "losses": [{k: {"first": v[0], "last": v[-1]} for k, v in s["losses"].items() if v} for s in scales],
        "seconds": [s["seconds"] for s in scales],  # to model.timing.json (write_model_json)
    }


def incompatibilities(meta: dict[str, Any], folder: Path, cfg: SinGANConfig, seed: int | None, input_sha: str) -> list[str]:
    """Why a model folder cannot continue this request (empty: it can)."""
    problems = []
    if is_imported(meta):
        src = meta["source"]
        problems.append(
            f"it holds a model imported from the authors' checkpoint {src.get('id')!r} (singanseg import-authors), "
            f"which has no critic, optimiser or random state to resume training from"
        )
    stored, new = to_mapping(config_of(meta, folder)), to_mapping(cfg)
    if stored != new:
        diff = {k: (v, new[k]) for k, v in stored.items() if new[k] != v}
        problems.append(f"config differs (stored, requested): {diff}")
    if seed is not None and meta["seed"] is not None and int(meta["seed"]) != seed:
        problems.append(f"seed {meta['seed']} != {seed}")
    if meta["input_sha256"] is None:
        problems.append("its input image/mask is not recorded")
    elif meta["input_sha256"] != input_sha:
        problems.append("it was trained on another image/mask")
    return problems


def is_imported(meta: dict[str, Any]) -> bool:
    """model.json of a model imported from the authors' checkpoints (singanseg.authors)."""
    return isinstance(meta.get("source"), dict) and meta["source"].get("kind") == "authors"


# Options added after models were written: the value those models were trained with (not
# today's default), so that such a model is not taken for one of the new default.
_TRAINED_BEFORE_OPTION = {"adam_impl": "loop"}


def config_of(meta: dict[str, Any], folder: Path) -> SinGANConfig:
    try:
        stored = {**_TRAINED_BEFORE_OPTION, **meta["config"]}
        return config_from_dict(stored, f"{folder / MODEL_JSON}: config")
    except ConfigError as e:
        raise CheckpointError(f"incompatible model: {e}") from None


# noise_amp = noise_amp_init * RMSE(reconstruction, real) (training.py), the RMSE of images
# in [-1, 1] at most 2; far above that is no trained value but a corrupted record.
NOISE_AMP_MAX = 100.0


def _noise_amp(meta: dict[str, Any], path: Path) -> float:
    """A scale record's noise_amp, checked: a number, finite, 0 <= noise_amp <= NOISE_AMP_MAX."""
    value = meta.get("noise_amp")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"{path}: noise_amp: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= NOISE_AMP_MAX:
        raise CheckpointError(
            f"{path}: noise_amp: must be finite and in [0, {NOISE_AMP_MAX:g}], got {value!r} (a corrupted record; retrain the scale)"
        )
    return value


def load_scale(
    folder: Path, n: int, cfg: SinGANConfig, device: str | torch.device = "cpu", imported: bool = False
) -> dict[str, Any]:
    """Scale n's frozen G (eval), D, z_opt, real (on `device`), rng state (CPU) and metadata.

    An imported model (singanseg.authors: `imported=True`) has no critic and no rng state:
    D and rng_state are None, and a training run never resumes from it (incompatibilities)."""
    tensors, meta = load_state(folder, scale_name(n))
    nfc, min_nfc = cfg.nfc_at(n)
    G = GeneratorConcatSkip2CleanAdd(cfg, nfc, min_nfc)
    D = None if imported else WDiscriminator(cfg, nfc, min_nfc)
    where = str(folder / f"{scale_name(n)}.safetensors")
    load_module(G, tensors, "G", where)
    if D is not None:
        load_module(D, tensors, "D", where)
    for key in ("z_opt", "real") if imported else ("z_opt", "real", "rng_state"):
        if key not in tensors:
            raise CheckpointError(f"{where}: tensor {key!r} missing")
    for net in (G, D):
        if net is not None:
            net.eval()
            net.requires_grad_(False)
    return {
        "G": G.to(device),
        "D": D.to(device) if D is not None else None,
        "z_opt": tensors["z_opt"].to(device),
        "real": tensors["real"].to(device),
        "rng_state": tensors.get("rng_state"),
        "noise_amp": _noise_amp(meta, folder / f"{scale_name(n)}.json"),
        "losses": meta.get("losses", {}),
        "seconds": read_timing(folder / f"{scale_name(n)}.json").get("seconds"),
    }


class SinGANSeg:
    """A trained (possibly partially trained) SinGAN-Seg model: frozen generators per scale."""

    def __init__(
        self,
        config: SinGANConfig,
        scales: list[dict[str, Any]],
        scale_factor: float,
        meta: dict[str, Any] | None = None,
        path: Path | None = None,
    ):
        self.config = config
        self.Gs = [s["G"] for s in scales]
        self.Ds = [s["D"] for s in scales]
        self.Zs = [s["z_opt"] for s in scales]
        self.reals = [s["real"] for s in scales]
        self.noise_amps = [s["noise_amp"] for s in scales]
        self.losses = [s["losses"] for s in scales]
        self.scale_factor = scale_factor
        self.meta = meta or {}
        self.path = path

    @classmethod
    def load(
        cls, folder: str | os.PathLike, allow_incomplete: bool = False, device: str | torch.device = "cpu"
    ) -> SinGANSeg:
        folder = Path(folder)
        meta = read_model_json(folder)
        if not meta["complete"] and not allow_incomplete:
            raise CheckpointError(
                f"{folder / MODEL_JSON}: training is unfinished ({meta['finished_scales']} of "
                f"{meta['pyramid']['stop_scale'] + 1} scales); rerun `singanseg train` with the same --out to resume"
            )
        cfg = config_of(meta, folder)
        recorded_sha = meta.get("scale_records_sha256")  # absent in models of earlier versions
        if recorded_sha is not None:
            for n in range(int(meta["finished_scales"])):
                path = folder / f"{scale_name(n)}.json"
                if not isinstance(recorded_sha, list) or n >= len(recorded_sha) or not path.is_file() or sha256_file(path) != recorded_sha[n]:
                    raise CheckpointError(
                        f"{path}: does not match {MODEL_JSON}'s scale_records_sha256[{n}]; the scale record was "
                        "edited or corrupted (retrain the model, or restore the folder)"
                    )
        imported = is_imported(meta)
        scales = [load_scale(folder, n, cfg, device, imported) for n in range(int(meta["finished_scales"]))]
        # model.json records every scale's noise_amp too: an edited scale record (or an
        # edited model.json) no longer matches the other, and is refused, not sampled from.
        recorded = meta.get("noise_amp")
        for n, s in enumerate(scales):
            if not isinstance(recorded, list) or n >= len(recorded) or recorded[n] != s["noise_amp"]:
                got = recorded[n] if isinstance(recorded, list) and n < len(recorded) else None
                raise CheckpointError(
                    f"{folder / f'{scale_name(n)}.json'}: noise_amp: {s['noise_amp']!r} does not match "
                    f"{MODEL_JSON}'s noise_amp[{n}] ({got!r}); the model folder was edited or corrupted"
                )
        sf = meta["pyramid"].get("scale_factor")
        if isinstance(sf, bool) or not isinstance(sf, (int, float)) or not (math.isfinite(sf) and 0 < sf <= 1):  # 1: a one-scale pyramid (max_size == min_size)
            raise CheckpointError(f"{folder / MODEL_JSON}: pyramid.scale_factor: must be a number in (0, 1], got {sf!r}")
        shapes = [list(s["real"].shape[2:]) for s in scales]
        if shapes != meta["pyramid"]["shapes"][: len(scales)]:
            raise CheckpointError(
                f"{folder / MODEL_JSON}: pyramid shapes {meta['pyramid']['shapes']} do not match the scale files {shapes}"
            )
        return cls(cfg, scales, float(meta["pyramid"]["scale_factor"]), meta, folder)

    @property
    def device(self) -> torch.device:
        return self.reals[0].device if self.reals else torch.device("cpu")

    def to(self, device: str | torch.device) -> SinGANSeg:
        """Move the generators, critics and tensors to `device` (in place; returns self)."""
        self.Gs = [G.to(device) for G in self.Gs]
        self.Ds = [D.to(device) if D is not None else None for D in self.Ds]
        self.Zs = [z.to(device) for z in self.Zs]
        self.reals = [r.to(device) for r in self.reals]
        return self

    @property
    def num_scales(self) -> int:
        return len(self.Gs)

    def sample(
        self,
        num: int = 1,
        gen_start_scale: int = 0,
        seed: int | None = None,
        mask_post_processing: bool = True,
        batch_size: int = 8,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`num` synthetic (image uint8 (H, W, 3), mask uint8 (H, W)) pairs."""
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        x = generate(self, num, gen_start_scale, gen, batch_size)
        return to_uint8(x, mask_post_processing)

    def reconstruction(self) -> torch.Tensor:
        """G's replay of the training pair (gen_start_scale = number of scales), (1, 4, H, W)."""
        return generate(self, 1, self.num_scales, torch.Generator().manual_seed(0))

    def info(self) -> dict[str, Any]:
        m = self.meta
        return {
            "path": str(self.path) if self.path else None,
            "complete": m.get("complete"),
            "scales": f"{self.num_scales} of {m.get('pyramid', {}).get('stop_scale', self.num_scales - 1) + 1}",
            "shapes (h, w), coarsest first": [list(r.shape[2:]) for r in self.reals],
            "scale_factor": self.scale_factor,
            "noise_amp": self.noise_amps,
            "nfc per scale": [self.config.nfc_at(n)[0] for n in range(self.num_scales)],
            "seed": m.get("seed"),
            "final rec_loss per scale": [
                lo["rec_loss"][-1] if lo.get("rec_loss") else None for lo in self.losses
            ],
            "config": to_mapping(self.config),
            "versions": m.get("versions"),
            **({"source": m["source"]} if is_imported(m) else {}),
        }
