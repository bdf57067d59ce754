"""FastGAN's LPIPS-VGG reconstruction loss, with the provenance of its VGG16 weights.

`train_4ch.py` (`vlbthambawita/singan-seg-polyp: FastGAN-4ch/`) scores the discriminator's
decoders with `lpips.LPIPS(net='vgg')`; `build_lpips` builds it from a named source
(`FastGANConfig.weights` / `weights_path`, docs/deviations/fastgan.md) and says where
the weights came from.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from singanseg.io import sha256_file
from singanseg.typed import ConfigError
from singanseg.vgg import VGGWeightsError, WeightsError, read_state_dict

VGG16_FILE = "vgg16-397923af.pth"  # torchvision VGG16_Weights.IMAGENET1K_V1, what lpips' vgg16 loads
_LPIPS: dict[tuple, tuple[nn.Module, dict[str, str]]] = {}


LPIPSWeightsError = WeightsError  # backbone weights missing or unreadable: the suite's one weights error



def _vgg_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise LPIPSWeightsError(f"{path}: VGG16 weights file not found (fastgan.weights_path)")
    try:
        # safetensors, or torch.load with weights_only: no code runs (docs/conventions.md)
        return read_state_dict(path)
    except VGGWeightsError as e:  # the message names the file
        raise LPIPSWeightsError(str(e)) from None


def _load_vgg_features(model: nn.Module, path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """Copy torchvision VGG16 `features.<i>.*` tensors into lpips' five slices (which keep the indices)."""
    targets = {f"features.{name}": t for s in range(1, 6) for name, t in getattr(model.net, f"slice{s}").state_dict(keep_vars=True).items()}
    missing = sorted(set(targets) - set(state))
    if missing:
        raise LPIPSWeightsError(f"{path}: not a torchvision VGG16 state dict (no {missing[0]}; {len(missing)} tensors missing)")
    with torch.no_grad():
        for key, t in targets.items():
            if state[key].shape != t.shape:
                raise LPIPSWeightsError(f"{path}: {key} has shape {tuple(state[key].shape)}, VGG16 needs {tuple(t.shape)}")
            t.copy_(state[key])


def build_lpips(weights: str, weights_path: str | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, str]]:
    """lpips.LPIPS(net='vgg') (train_4ch.py) with frozen parameters, and where its weights came from.

    `imagenet`: the VGG16 trunk from `weights_path`, else through torchvision's own loader
    (torch hub cache `<hub>/checkpoints/vgg16-397923af.pth`, downloaded if possible); if
    neither works, an error says how to proceed. `random`: `pnet_rand=True`, a randomly
    initialised trunk (the LPIPS linear layers still come from the lpips package).
    Cached per process: building VGG16 costs seconds.
    """
    from importlib.metadata import version

    import lpips

    key = (weights, weights_path, str(device))
    if key in _LPIPS:
        return _LPIPS[key]
    prov = {"lpips_net": "vgg", "lpips_version": f"lpips {version('lpips')} v0.1 linear layers"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation, inside lpips
        if weights == "random":
            model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
            prov["lpips_backbone"] = "random-init (weights: random; not the paper's loss)"
        elif weights == "imagenet" and weights_path:
            path = Path(weights_path).expanduser()
            state = _vgg_state(path)  # fail on a missing or unreadable file before building anything
            # the random-trunk model, copied (building VGG16 costs seconds), then the trunk loaded
            model = copy.deepcopy(build_lpips("random", None, "cpu")[0])
            _load_vgg_features(model, path, state)
            prov["lpips_backbone"] = f"imagenet vgg16 from {path} (sha256 {sha256_file(path)})"
        elif weights == "imagenet":
            cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
            try:
                model = lpips.LPIPS(net="vgg", pnet_rand=False, verbose=False)
            except (OSError, RuntimeError) as e:  # offline: URLError is an OSError
                raise LPIPSWeightsError(
                    f"{cached}: VGG16 ImageNet weights for the LPIPS reconstruction loss are not there and could "
                    f"not be downloaded ({str(e)[:160]}); place torchvision's {VGG16_FILE} there, set "
                    f"fastgan weights_path, or set weights: random (a random backbone, not the paper's loss)"
                ) from None
            prov["lpips_backbone"] = f"imagenet vgg16 via torchvision ({cached})"
        else:
            raise ConfigError(f"weights: {weights!r} is not one of 'imagenet', 'random'")
    model = model.to(device).eval().requires_grad_(False)
    _LPIPS[key] = (model, prov)
    return model, prov
