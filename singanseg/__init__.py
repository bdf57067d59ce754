"""SinGAN-Seg: synthetic image/mask pairs from one polyp image (Thambawita et al., PLOS ONE 2022).

The library trains one 4-channel SinGAN (RGB + mask) per real image, samples synthetic
pairs and refines them with neural style transfer. See README.md and docs/.

    import singanseg
    model = singanseg.train("image.jpg", "mask.png", "model/", config=singanseg.preset("smoke"))
    pairs = model.sample(num=10, gen_start_scale=0)

The package imports lazily (PEP 562): `import singanseg.io` (the shared conventions that the
baselines, metrics and stages use too: io, typed, ckpt, device, executors, tracking) does not
import the models, training or style transfer; `singanseg.train` etc. import them on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from singanseg._version import __version__

_LAZY = {
    "load": "singanseg.api",
    "train": "singanseg.api",
    "SinGANConfig": "singanseg.config",
    "preset": "singanseg.config",
    "SinGANSeg": "singanseg.saved_model",
    "StyleConfig": "singanseg.style_transfer",
    "stylize": "singanseg.style_transfer",
}

if TYPE_CHECKING:
    from singanseg.api import load, train
    from singanseg.config import SinGANConfig, preset
    from singanseg.saved_model import SinGANSeg
    from singanseg.style_transfer import StyleConfig, stylize


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["SinGANConfig", "SinGANSeg", "StyleConfig", "__version__", "load", "preset", "stylize", "train"]
