"""The VGG backbone of the style transfer and where its weights come from.

One concept per module: this holds torchvision's VGG16/VGG19 `.features` (the classifier is
never built), its three weight sources (ImageNet through torchvision's hub cache, a state
dict file, a seeded random init) with the provenance record that says which one ran, and
`read_state_dict`, the one safe reader of a weights file that `baselines/fastgan.py` (LPIPS)
uses too. The style transfer itself (losses, Adam on the pixels) is `singanseg.style_transfer`; this
module knows nothing of its config, so other users of a VGG trunk need not import it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from singanseg.errors import WeightsError
from singanseg.io import sha256_file

# ImageNet statistics, as the authors' loader (`transforms.Normalize`, paper.md section 2)
VGG_MEAN = (0.485, 0.456, 0.406)
VGG_STD = (0.229, 0.224, 0.225)
_VGG_CFG = {"vgg16": "D", "vgg19": "E"}  # torchvision's layer configurations
VGG_MODELS = tuple(_VGG_CFG)  # the backbones `load_vgg` builds


# VGG weights are missing or unusable: the suite's one weights error (singanseg.errors)
VGGWeightsError = WeightsError


@dataclass(frozen=True)
class Backbone:
    features: nn.Sequential  # a VGG `.features`
    provenance: dict[str, str]


def state_sha256(module: nn.Module) -> str:
    """Hash of a module's parameters (names and bytes): which weights, whatever their source."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: `.safetensors`, else a `torch.save`d state dict.

    Never runs code from the file (docs/conventions.md); any failure to read it, or a file
    that holds something other than a dict, is a `VGGWeightsError` naming the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            # weights_only: the restricted unpickler, which refuses to run code from the file
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise VGGWeightsError(
            # the first line only: torch's weights-only refusal runs to several paragraphs
            f"{path}: cannot read VGG weights ({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})"
        ) from None
    if not isinstance(sd, dict):
        raise VGGWeightsError(
            f"{path}: expected a state dict of tensors, got {type(sd).__name__}"
        )
    return sd


def _vgg_features(vgg_model: str) -> nn.Sequential:
    # torchvision's own layer list; the classifier (100M+ parameters) is never needed here
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs[_VGG_CFG[vgg_model]], batch_norm=False)


def _random_features(vgg_model: str, seed: int) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        feats = _vgg_features(vgg_model)
        for m in feats.modules():  # torchvision VGG's own initialisation of its convs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return feats


def _features_from_file(vgg_model: str, path: Path) -> nn.Sequential:
    sd = read_state_dict(path)
    if any(k.startswith("features.") for k in sd):  # a full torchvision VGG state dict
        sd = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    feats = _vgg_features(vgg_model)
    try:
        feats.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise VGGWeightsError(
            f"{path}: weights do not fit {vgg_model}.features ({first})"
        ) from None
    return feats


def load_vgg(
    vgg_model: str,
    weights: str,
    download: bool = True,
    random_seed: int = 0,
    device: str | torch.device = "cpu",
) -> Backbone:
    """The `vgg_model` `.features` with `weights` (imagenet | random | a file), and provenance.

    `imagenet` = torchvision IMAGENET1K_V1 from the torch hub cache, downloaded there if
    `download`; `random` = torchvision's initialisation under `random_seed`; otherwise the
    path of a state dict file (`.safetensors` or `.pth`, `features.`-prefixed or not).
    """
    prov = {"vgg_model": vgg_model}
    if weights == "random":
        feats = _random_features(vgg_model, random_seed)
        prov.update(
            weights="random-init",
            random_seed=str(random_seed),
            note="random VGG: a plumbing check, not the paper's pretrained style transfer",
        )
    elif weights == "imagenet":
        import torchvision.models as tvm

        enum = getattr(tvm, f"{vgg_model.upper()}_Weights").IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if not cached.is_file() and not download:
            raise VGGWeightsError(
                _how_to_get_weights(vgg_model, cached, "not in the torch hub cache")
            )
        try:
            feats = getattr(tvm, vgg_model)(weights=enum).features
        except Exception as e:  # noqa: BLE001 - offline download errors vary (URLError, OSError, ...)
            raise VGGWeightsError(
                _how_to_get_weights(vgg_model, cached, f"{type(e).__name__}: {e}")
            ) from None
        prov.update(
            weights=f"imagenet:{type(enum).__name__}.{enum.name}",
            weights_file=str(cached),
            weights_sha256=sha256_file(cached) if cached.is_file() else "unknown",
        )
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise VGGWeightsError(
                f"weights {weights!r}: not 'imagenet', 'random' or an existing weights file"
            )
        feats = _features_from_file(vgg_model, path)
        prov.update(weights="file", weights_file=str(path), weights_sha256=sha256_file(path))
    prov["state_sha256"] = state_sha256(feats)
    return Backbone(_prepare(feats, device), prov)


def backbone_from(
    network: Backbone | nn.Module, vgg_model: str, device: str | torch.device
) -> Backbone:
    """A given backbone, or a bare `.features` (provenance `injected`), frozen on `device`."""
    if isinstance(network, Backbone):
        return Backbone(_prepare(network.features, device), network.provenance)
    return Backbone(
        _prepare(network, device),
        {
            "vgg_model": vgg_model,
            "weights": "injected",
            "network": type(network).__name__,
            "state_sha256": state_sha256(network),
        },
    )


def _how_to_get_weights(vgg_model: str, cached: Path, why: str) -> str:
    return (
        f"{vgg_model} ImageNet weights unavailable ({why}). Offline, either copy torchvision's "
        f"file to {cached} (TORCH_HOME decides the folder), or set `weights:` to a state dict "
        f"file (.pth or .safetensors), or set `weights: random` explicitly for a plumbing run "
        f"whose outputs are then marked random-init."
    )


def _prepare(feats: nn.Module, device: str | torch.device) -> nn.Sequential:
    if not isinstance(feats, nn.Sequential):
        raise VGGWeightsError(
            f"network: expected a VGG `.features` nn.Sequential, got {type(feats).__name__}"
        )
    feats = feats.to(device).eval()
    for p in feats.parameters():
        p.requires_grad_(False)  # only the pixels are optimised (paper.md s2)
    return feats


def conv_names(features: nn.Sequential) -> dict[int, str]:
    """Index -> true VGG name (`conv<block>_<k>`), counted from the network itself."""
    names, block, k = {}, 1, 0
    for i, m in enumerate(features):
        if isinstance(m, nn.Conv2d):
            k += 1
            names[i] = f"conv{block}_{k}"
        elif isinstance(m, nn.MaxPool2d):
            block, k = block + 1, 0
    return names
