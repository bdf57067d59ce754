"""SinGAN-Seg step 2: Gatys-style neural style transfer of a generated image.

What the authors ran (../shared/docs/paper.md section 2; `singan_seg_polyp/style_transfer.py`,
read for facts): the pixels of the generated (content) image are optimised directly with
Adam (lr 0.01, 1000 steps) against VGG features; the style image is the real training
image of the same SinGAN, resized to the content's size; only RGB is stylised, the mask is
carried unchanged. The backbone is torchvision's ImageNet VGG16 `.features`, tapped at
indices 0, 5, 10, 19, 21, 28 which the code labels with VGG19 names (conv1_1 ... conv5_1);
in VGG16 19/21/28 are really conv4_2/conv4_3/conv5_3. The taps are taken at the conv
module, but the next ReLU is `inplace=True`, so the stored activations are post-ReLU.
Gram = F·Fᵀ unnormalised; per-layer style loss = w·MSE(G, G_style) / (n·c·h·w).

Every difference from that code is a named option of `StyleConfig` with the paper's
behaviour as default (docs/deviations/style.md). Batching several images through VGG at
once is not a difference: each image's loss only depends on its own pixels and Adam is
element-wise, so the batched result equals one-by-one runs up to float rounding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from singanseg.io import (
    IMAGE_SUFFIXES,
    InputError,
    atomic_dir,
    list_pairs,
    read_image,
    sha256_file,
    write_png,
    write_text,
)
from singanseg.typed import ConfigError, from_mapping, to_mapping

# ImageNet statistics, as the authors' loader (`transforms.Normalize`, paper.md section 2)
VGG_MEAN = (0.485, 0.456, 0.406)
VGG_STD = (0.229, 0.224, 0.225)
# The authors' tap table: `.features` index -> label (VGG19 names even on VGG16; paper.md s2)
PAPER_FEATURE_LAYERS = {
    0: "conv1_1",
    5: "conv2_1",
    10: "conv3_1",
    19: "conv4_1",
    21: "conv4_2",
    28: "conv5_1",
}
PAPER_STYLE_WEIGHTS = {
    "conv1_1": 0.75,
    "conv2_1": 0.5,
    "conv3_1": 0.25,
    "conv4_1": 0.25,
    "conv5_1": 0.25,
}
# content:style ratios the authors ran (`singan-polyp-aug-exp@mimir: style_transfer_1_to_*.py`,
# paper.md section 2); the segmentation runs used 1to1 (`_ST`) and 1to1000 (`_ST_1to1000`)
RATIO_PRESETS = {
    "1to1": (1.0, 1.0),
    "1to10": (1.0, 10.0),
    "1to1000": (1.0, 1000.0),
    "1to1000000": (1.0, 1e6),
    "1000to1": (1000.0, 1.0),
}
_VGG_CFG = {"vgg16": "D", "vgg19": "E"}  # torchvision's layer configurations


class StyleWeightsError(ValueError):
    """VGG weights are missing or unusable; the message says how to provide them offline."""


@dataclass(frozen=True)
class StyleConfig:
    # paper.md s2: "The experiments used vgg16"; `vgg19` is the backbone the labels name
    vgg_model: Literal["vgg16", "vgg19"] = "vgg16"
    # `imagenet` = torchvision IMAGENET1K_V1 (the authors' `pretrained=True`) from the torch
    # hub cache (downloaded if `download`); a path = a state dict file; `random` = seeded init
    weights: str = "imagenet"
    download: bool = True  # fetch imagenet weights into the hub cache when missing
    random_seed: int = 0  # only for weights: random
    # `paper`: the authors' indices {0,5,10,19,21,28} whatever the backbone; `by_name`: the
    # index of the conv the label names in the chosen backbone (differs only for vgg16)
    layers: Literal["paper", "by_name"] = "paper"
    # `post_relu`: what the authors' code stores (conv output rewritten by the inplace ReLU);
    # `conv_output`: the pre-activation the labels suggest
    capture: Literal["post_relu", "conv_output"] = "post_relu"
    content_layer: str = "conv5_1"  # paper.md s2
    style_weights: dict[str, float] = field(default_factory=lambda: dict(PAPER_STYLE_WEIGHTS))
    content_weight: float = 1.0  # paper.md s2: CLI defaults cw = 1, sw = 1000 (the 1:1000 setting)
    style_weight: float = 1000.0
    lr: float = 0.01  # paper.md s2: Adam lr 0.01 on the input image
    num_epochs: int = 1000  # paper.md s2: 1000 steps ("epochs"), one Adam step each
    # `truncate`: the authors' `to_pil_image` (x*255 cast to uint8); `round`: nearest value
    quantize: Literal["truncate", "round"] = "truncate"

    def validate(self, where: str) -> None:
        if not self.weights.strip():
            raise ConfigError(
                f"{where}.weights: empty (use imagenet, random or a weights file path)"
            )
        if self.num_epochs < 0:
            raise ConfigError(f"{where}.num_epochs: must be >= 0, got {self.num_epochs}")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr: must be > 0, got {self.lr}")
        for key in ("content_weight", "style_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: must be >= 0, got {getattr(self, key)}")
        names = [self.content_layer, *self.style_weights]
        known = set(PAPER_FEATURE_LAYERS.values())
        for n in names:
            if not re.fullmatch(r"conv\d_\d", n) or (self.layers == "paper" and n not in known):
                raise ConfigError(f"{where}: layer {n!r} is not one of {', '.join(sorted(known))}")


def parse_ratio(name: str) -> tuple[float, float]:
    """`1to1000` -> (1.0, 1000.0): a preset name, or `<content>to<style>` with numbers."""
    if name in RATIO_PRESETS:
        return RATIO_PRESETS[name]
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*to\s*([0-9.eE+]+)\s*", str(name))
    try:
        c, s = float(m.group(1)), float(m.group(2))  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        raise ConfigError(
            f"ratio {name!r}: expected '<content>to<style>', e.g. {', '.join(RATIO_PRESETS)}"
        ) from None
    return c, s


# ---------------------------------------------------------------- backbone and weights


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
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            # weights_only: the restricted unpickler, which refuses to run code from the file
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise StyleWeightsError(
            f"{path}: cannot read VGG weights ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(sd, dict):
        raise StyleWeightsError(
            f"{path}: expected a state dict of tensors, got {type(sd).__name__}"
        )
    if any(k.startswith("features.") for k in sd):  # a full torchvision VGG state dict
        sd = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    feats = _vgg_features(vgg_model)
    try:
        feats.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise StyleWeightsError(
            f"{path}: weights do not fit {vgg_model}.features ({first})"
        ) from None
    return feats


def load_backbone(config: StyleConfig, device: str | torch.device = "cpu") -> Backbone:
    """The VGG `.features` named by `config.vgg_model` / `config.weights`, with provenance."""
    prov = {"vgg_model": config.vgg_model}
    if config.weights == "random":
        feats = _random_features(config.vgg_model, config.random_seed)
        prov.update(
            weights="random-init",
            random_seed=str(config.random_seed),
            note="random VGG: a plumbing check, not the paper's pretrained style transfer",
        )
    elif config.weights == "imagenet":
        import torchvision.models as tvm

        enum = getattr(tvm, f"{config.vgg_model.upper()}_Weights").IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        if not cached.is_file() and not config.download:
            raise StyleWeightsError(
                _how_to_get_weights(config.vgg_model, cached, "not in the torch hub cache")
            )
        try:
            feats = getattr(tvm, config.vgg_model)(weights=enum).features
        except Exception as e:  # noqa: BLE001 - offline download errors vary (URLError, OSError, ...)
            raise StyleWeightsError(
                _how_to_get_weights(config.vgg_model, cached, f"{type(e).__name__}: {e}")
            ) from None
        prov.update(
            weights=f"imagenet:{type(enum).__name__}.{enum.name}",
            weights_file=str(cached),
            weights_sha256=sha256_file(cached) if cached.is_file() else "unknown",
        )
    else:
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise StyleWeightsError(
                f"weights {config.weights!r}: not 'imagenet', 'random' or an existing weights file"
            )
        feats = _features_from_file(config.vgg_model, path)
        prov.update(weights="file", weights_file=str(path), weights_sha256=sha256_file(path))
    prov["state_sha256"] = state_sha256(feats)
    return Backbone(_prepare(feats, device), prov)


def _how_to_get_weights(vgg_model: str, cached: Path, why: str) -> str:
    return (
        f"{vgg_model} ImageNet weights unavailable ({why}). Offline, either copy torchvision's "
        f"file to {cached} (TORCH_HOME decides the folder), or set `weights:` to a state dict "
        f"file (.pth or .safetensors), or set `weights: random` explicitly for a plumbing run "
        f"whose outputs are then marked random-init."
    )


def _prepare(feats: nn.Module, device: str | torch.device) -> nn.Sequential:
    if not isinstance(feats, nn.Sequential):
        raise StyleWeightsError(
            f"network: expected a VGG `.features` nn.Sequential, got {type(feats).__name__}"
        )
    feats = feats.to(device).eval()
    for p in feats.parameters():
        p.requires_grad_(False)  # only the pixels are optimised (paper.md s2)
    return feats


def as_backbone(
    network: Backbone | nn.Module | None, config: StyleConfig, device: str | torch.device
) -> Backbone:
    if network is None:
        return load_backbone(config, device)
    if isinstance(network, Backbone):
        return Backbone(_prepare(network.features, device), network.provenance)
    return Backbone(
        _prepare(network, device),
        {
            "vgg_model": config.vgg_model,
            "weights": "injected",
            "network": type(network).__name__,
            "state_sha256": state_sha256(network),
        },
    )


# ---------------------------------------------------------------- features and losses


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


def layer_indices(features: nn.Sequential, config: StyleConfig) -> dict[str, int]:
    """Label -> `.features` index of each layer the losses use."""
    wanted = [config.content_layer, *config.style_weights]
    if config.layers == "paper":
        table = {label: i for i, label in PAPER_FEATURE_LAYERS.items()}
    else:
        table = {label: i for i, label in conv_names(features).items()}
    out = {}
    for label in dict.fromkeys(wanted):
        i = table.get(label)
        if i is None or i >= len(features) or not isinstance(features[i], nn.Conv2d):
            raise StyleWeightsError(
                f"network: layer {label} (index {i}) is not a conv of this {config.vgg_model}.features"
            )
        out[label] = i
    return out


def capture_points(features: nn.Sequential, taps: dict[str, int], capture: str) -> dict[str, int]:
    """Label -> index after which the activation is read.

    `post_relu` mirrors the authors' aliasing: the tensor stored at conv i is rewritten by
    module i+1 when that is an inplace ReLU, so it is read after i+1 (paper.md s2).
    """
    out = {}
    for label, i in taps.items():
        nxt = features[i + 1] if i + 1 < len(features) else None
        inplace_relu = isinstance(nxt, nn.ReLU) and nxt.inplace
        out[label] = i + 1 if capture == "post_relu" and inplace_relu else i
    return out


def extract(
    features: nn.Sequential, x: torch.Tensor, points: dict[str, int]
) -> dict[str, torch.Tensor]:
    by_index: dict[int, list[str]] = {}
    for label, i in points.items():
        by_index.setdefault(i, []).append(label)
    feats: dict[str, torch.Tensor] = {}
    for i, module in enumerate(features):
        if i > max(by_index):
            break  # the layers after the last tap change nothing
        x = module(x)
        if i in by_index:
            nxt = features[i + 1] if i + 1 < len(features) else None
            # a clone survives a following inplace ReLU (what capture: conv_output needs)
            kept = x.clone() if isinstance(nxt, nn.ReLU) and nxt.inplace else x
            feats.update({label: kept for label in by_index[i]})
    return feats


def gram(f: torch.Tensor) -> torch.Tensor:
    """Per-image unnormalised Gram F·Fᵀ, (B, C, C) (authors' `gram_matrix` with n = 1)."""
    b, c = f.shape[:2]
    flat = f.reshape(b, c, -1)
    return flat @ flat.transpose(1, 2)


@dataclass
class StyleResult:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    losses: list[float]  # total loss per step (summed over the batch), before the step
    content_losses: list[float]
    style_losses: list[float]


def transfer_style_tensors(
    content: torch.Tensor, style: torch.Tensor, backbone: Backbone, config: StyleConfig
) -> StyleResult:
    """Optimise the pixels of `content` (B,3,H,W in [0,1]) towards `style` (same shape)."""
    if content.shape != style.shape or content.dim() != 4 or content.shape[1] != 3:
        raise InputError(
            f"content {tuple(content.shape)} and style {tuple(style.shape)}: expected equal (B, 3, H, W)"
        )
    feats = backbone.features
    points = capture_points(feats, layer_indices(feats, config), config.capture)
    dev = next(feats.parameters()).device
    mean = torch.tensor(VGG_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(VGG_STD, device=dev).view(1, 3, 1, 1)
    con = (content.to(dev) - mean) / std
    sty = (style.to(dev) - mean) / std
    with torch.no_grad():
        target_c = extract(feats, con, points)[config.content_layer]
        sf = extract(feats, sty, points)
        target_g = {k: gram(sf[k]) for k in config.style_weights}
    x = con.clone().requires_grad_(True)  # the input starts as the content image (paper.md s2)
    opt = torch.optim.Adam([x], lr=config.lr)
    history: list[torch.Tensor] = []  # kept on the device: no host sync per step
    for _ in range(config.num_epochs):
        opt.zero_grad(set_to_none=True)
        f = extract(feats, x, points)
        lc = ((f[config.content_layer] - target_c) ** 2).mean(dim=(1, 2, 3))  # per-image MSE
        ls = torch.zeros_like(lc)
        for k, w in config.style_weights.items():
            _, c, h, wd = f[k].shape
            ls = ls + w * ((gram(f[k]) - target_g[k]) ** 2).mean(dim=(1, 2)) / (c * h * wd)
        loss = (config.content_weight * lc + config.style_weight * ls).sum()
        loss.backward()
        opt.step()
        history.append(torch.stack([loss.detach(), lc.detach().sum(), ls.detach().sum()]))
    rows = torch.stack(history).cpu().tolist() if history else []
    return StyleResult(
        images=(x.detach() * std + mean).clamp(0, 1),  # de-normalised, clamped (paper.md s2)
        losses=[r[0] for r in rows],
        content_losses=[r[1] for r in rows],
        style_losses=[r[2] for r in rows],
    )


# ---------------------------------------------------------------- arrays, files, folders


def _to_tensor(a: np.ndarray, what: str) -> torch.Tensor:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{what}: expected a uint8 HxWx3 array, got {a.dtype} {a.shape}")
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div(255)


def _resize(style: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    # the authors' `transforms.Resize((h, w))` on a PIL image = PIL bilinear (paper.md s2)
    if style.shape[:2] == hw:
        return style
    return np.asarray(Image.fromarray(style).resize((hw[1], hw[0]), Image.BILINEAR))


def to_uint8(images: torch.Tensor, quantize: str) -> list[np.ndarray]:
    x = images.detach().cpu().mul(255)
    x = x.round() if quantize == "round" else x  # the uint8 cast truncates, as `to_pil_image`
    return [a.permute(1, 2, 0).to(torch.uint8).numpy() for a in x]


def stylize(
    content: np.ndarray,
    style: np.ndarray,
    config: StyleConfig,
    device: str = "cpu",
    network: Backbone | nn.Module | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """Style-transfer one image: uint8 HxWx3 content and style -> (uint8 HxWx3, provenance)."""
    backbone = as_backbone(network, config, device)
    c = _to_tensor(content, "content")
    s = _to_tensor(_resize(_check(style, "style"), tuple(c.shape[1:])), "style")
    res = transfer_style_tensors(c[None], s[None], backbone, config)
    return to_uint8(res.images, config.quantize)[0], dict(backbone.provenance)


def _check(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{what}: expected a uint8 HxWx3 array, got {a.dtype} {a.shape}")
    return a


def style_source_id(content_id: str) -> str:
    """`<srcid>_<n>` -> `<srcid>`: the real image whose SinGAN generated it (paper.md s2)."""
    src, sep, n = content_id.rpartition("_")
    if not sep or not src or not n.isdigit():
        raise InputError(f"content id {content_id!r}: expected '<source id>_<n>' (n a number)")
    return src


def _style_index(style_dir: Path) -> dict[str, Path]:
    folder = style_dir / "images" if (style_dir / "images").is_dir() else style_dir
    if not folder.is_dir():
        raise InputError(f"{style_dir}: style folder not found")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def stylize_folder(
    content_dir: str | Path,
    style_dir: str | Path,
    out_dir: str | Path,
    config: StyleConfig,
    device: str = "cpu",
    network: Backbone | nn.Module | None = None,
    batch_size: int = 4,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Stylise every `images/<srcid>_<n>` of `content_dir` with style `<style_dir>/<srcid>.*`.

    Writes `out_dir/images/<id>.png`, `out_dir/masks/` (the content masks, byte-identical)
    and `out_dir/provenance.json`, atomically. Returns the provenance record.
    """
    content_dir, style_dir, out_dir = Path(content_dir), Path(style_dir), Path(out_dir)
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    pairs = list_pairs(content_dir)
    styles = _style_index(style_dir)
    for p in pairs:  # fail before any compute when a style image is missing
        try:
            style_source_id(p.id)
        except InputError as e:
            raise InputError(f"{p.image}: {e}") from None
        if style_source_id(p.id) not in styles:
            raise InputError(
                f"{p.image}: no style image '{style_source_id(p.id)}.*' in {style_dir}"
            )
    backbone = as_backbone(network, config, device)
    sizes: dict[tuple[int, int], list] = {}
    for p in pairs:
        with Image.open(p.image) as im:
            sizes.setdefault((im.height, im.width), []).append(p)
    start, final_losses = time.perf_counter(), []
    with atomic_dir(out_dir) as tmp:
        for hw, group in sizes.items():
            for b in range(0, len(group), batch_size):
                chunk = group[b : b + batch_size]
                c = torch.stack([_to_tensor(read_image(p.image), str(p.image)) for p in chunk])
                s = torch.stack(
                    [
                        _to_tensor(
                            _resize(read_image(styles[style_source_id(p.id)]), hw), str(p.image)
                        )
                        for p in chunk
                    ]
                )
                res = transfer_style_tensors(c, s, backbone, config)
                for p, img in zip(chunk, to_uint8(res.images, config.quantize), strict=True):
                    write_png(tmp / "images" / f"{p.id}.png", img)
                    (tmp / "masks").mkdir(exist_ok=True)
                    shutil.copyfile(
                        p.mask, tmp / "masks" / p.mask.name
                    )  # mask unchanged (paper.md s2)
                if res.losses:
                    final_losses.append(res.losses[-1] / len(chunk))
                if log:
                    log(
                        f"stylize: {min(b + batch_size, len(group))}/{len(group)} at {hw[1]}x{hw[0]}"
                    )
        record = {
            **backbone.provenance,
            "config": to_mapping(config),
            "content_dir": str(content_dir),
            "style_dir": str(style_dir),
            "images": len(pairs),
            "seconds": round(time.perf_counter() - start, 3),
            "mean_final_loss": float(np.mean(final_losses)) if final_losses else None,
        }
        write_text(tmp / "provenance.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


# ---------------------------------------------------------------- CLI


def add_stylize_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `singanseg stylize CONTENT STYLE --out OUT ...`; the handler is `args.func`."""
    p = subparsers.add_parser(
        "stylize",
        help="neural style transfer of generated images (SinGAN-Seg step 2)",
        description="CONTENT/STYLE are image files, or folders: CONTENT holds images/ and masks/ "
        "with ids <srcid>_<n>, STYLE holds <srcid>.png (paper.md section 2).",
    )
    p.add_argument("content", help="generated image file, or a folder with images/ and masks/")
    p.add_argument("style", help="real image file, or a folder of real images")
    p.add_argument("--out", required=True, help="output image file (.png) or output folder")
    p.add_argument(
        "--ratio",
        choices=sorted(RATIO_PRESETS),
        help="content:style preset (overrides the weights)",
    )
    p.add_argument("--content-weight", type=float, default=None)
    p.add_argument("--style-weight", type=float, default=None)
    p.add_argument(
        "--steps", type=int, default=None, help="Adam steps (the authors' num_epochs; 1000)"
    )
    p.add_argument(
        "--weights", default=None, help="imagenet (default), random, or a state dict file"
    )
    p.add_argument("--vgg", choices=sorted(_VGG_CFG), default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.set_defaults(func=run_stylize_command)
    return p


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    updates: dict[str, Any] = {}
    if args.ratio:
        updates["content_weight"], updates["style_weight"] = parse_ratio(args.ratio)
    for key, attr in (
        ("content_weight", "content_weight"),
        ("style_weight", "style_weight"),
        ("num_epochs", "steps"),
        ("weights", "weights"),
        ("vgg_model", "vgg"),
    ):
        if getattr(args, attr) is not None:
            updates[key] = getattr(args, attr)
    return from_mapping(StyleConfig, updates, "stylize")


def run_stylize_command(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        content, style, out = Path(args.content), Path(args.style), Path(args.out)
        if content.is_dir():
            record = stylize_folder(
                content,
                style,
                out,
                config,
                args.device,
                batch_size=args.batch_size,
                log=lambda m: print(m, file=sys.stderr),
            )
            print(f"wrote {record['images']} image(s) to {out} (weights: {record['weights']})")
            return 0
        if style.is_dir():
            raise InputError(
                f"{style}: a folder, but CONTENT {content} is a file (give both as files or both as folders)"
            )
        image, prov = stylize(read_image(content), read_image(style), config, args.device)
        write_png(out, image)
        write_text(
            out.with_name(out.stem + ".provenance.json"),
            json.dumps(
                {
                    **prov,
                    "config": to_mapping(config),
                    "content": str(content),
                    "style": str(style),
                },
                indent=2,
            )
            + "\n",
        )
        print(f"wrote {out} (weights: {prov['weights']})")
        return 0
    except ValueError as e:  # InputError, ConfigError, StyleWeightsError: a clear message, no trace
        print(f"singanseg stylize: error: {e}", file=sys.stderr)
        return 2
