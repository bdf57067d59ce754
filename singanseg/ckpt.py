"""Checkpoint files: safetensors for tensors, JSON for everything else, never pickle.

Decided for the suite (design notes): loading a checkpoint that someone shared executes no
code. A state is two files, `<name>.safetensors` and `<name>.json`; the JSON is written
last and records the tensors file's sha256, so a half-written or corrupted state is
detected on load instead of being trusted. Used by SinGAN-Seg (one state per scale) and by
the baseline GANs (one state per checkpoint interval), including optimiser states so that
training resumes exactly.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from singanseg.errors import UserError
from singanseg.io import (
    _respect_umask,
    _tmp_prefix,
    disk_full_error,
    is_disk_full,
    sha256_file,
    write_text,
)

FORMAT = "singanseg-state"
FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint is missing, corrupted or incompatible; the message names the file."""



def save_state(folder: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any], name: str = "state") -> Path:
    """Write `<folder>/<name>.safetensors` then `<name>.json` (atomically, JSON last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    st = folder / f"{name}.safetensors"
    # a temporary name singanseg.io.clean_stale_tmp recognises: a killed run's is removed later
    tmp = folder / f"{_tmp_prefix(st.name)}st.tmp"
    # safetensors refuses shared or non-contiguous storage; checkpoints want plain copies anyway
    plain = {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}
    try:
        save_file(plain, str(tmp))
        # save_file creates the file 0600; weights are outputs like every other file: follow the umask
        _respect_umask(tmp, is_dir=False)
        os.replace(tmp, st)
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # never a partial tensors file, visible or hidden
        if is_disk_full(e):  # a SafetensorError (Rust's StorageFull) or OSError 28
            raise disk_full_error(folder, sum(v.numel() * v.element_size() for v in plain.values())) from None
        raise
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "tensors_sha256": sha256_file(st), **meta}
    write_text(folder / f"{name}.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return folder / f"{name}.json"


def read_meta(folder: str | os.PathLike, name: str = "state") -> dict[str, Any]:
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint metadata not found")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a singanseg checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('format_version')} is not supported "
            f"by this version of singanseg (expects {FORMAT_VERSION})"
        )
    return meta


def load_state(folder: str | os.PathLike, name: str = "state", device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a state written by `save_state`; verifies the tensors file against the JSON's hash."""
    meta = read_meta(folder, name)
    st = Path(folder) / f"{name}.safetensors"
    if not st.is_file():
        raise CheckpointError(f"{st}: checkpoint tensors not found")
    if sha256_file(st) != meta["tensors_sha256"]:
        raise CheckpointError(f"{st}: checkpoint tensors are corrupted (sha256 does not match {name}.json)")
    try:
        tensors = load_file(str(st), device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{st}: unreadable checkpoint tensors ({e})") from None
    return tensors, meta


def module_tensors(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A module's state dict (parameters and buffers) under `prefix.`."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where: str = "checkpoint") -> None:
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{where}: weights '{prefix}' do not fit the model ({first})") from None


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (safetensors) and plain values (JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        entry = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{pid}.{k}"] = v
                entry[k] = {"tensor": f"{prefix}.{pid}.{k}"}
            else:
                entry[k] = v
        plain["state"][str(pid)] = entry
    return tensors, plain


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    state = {}
    for pid, entry in plain["state"].items():
        state[int(pid)] = {
            k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v for k, v in entry.items()
        }
    opt.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def _own_version() -> str:
    """The installed distribution's version; the source tree's when run uninstalled (PYTHONPATH)."""
    try:
        return importlib.metadata.version("singanseg")
    except importlib.metadata.PackageNotFoundError:
        from singanseg._version import __version__

        return __version__


def library_versions() -> dict[str, str]:
    """Versions recorded in every checkpoint (what produced it)."""
    import numpy
    import safetensors

    return {
        "singanseg": _own_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }
