"""Which torch device a run uses: one rule for every entry point (library, CLI, stages).

`auto` is CUDA when torch sees a GPU, else the CPU; anything else is a torch device string
(`cpu`, `cuda`, `cuda:1`, `mps`) and must be usable here: asking for a GPU that is not
there is a clear error, not a silent fall-back to hours of CPU training.
"""

from __future__ import annotations

import torch

from singanseg.typed import ConfigError


def resolve_device(name: str | torch.device | None = "auto", where: str = "device") -> torch.device:
    """`auto`/None -> cuda if available else cpu; otherwise the named device, checked."""
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"{where}: {name!r} is not a torch device (auto, cpu, cuda, cuda:N, mps): {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}: {name!r} asked for, but torch sees no CUDA device here (use auto or cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{where}: {name!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{where}: {name!r} asked for, but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{where}: {name!r}: only cpu, cuda and mps are supported")
    return dev


__all__ = ["resolve_device"]
