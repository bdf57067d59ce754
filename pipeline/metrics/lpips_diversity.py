"""LPIPS diversity of synthetic samples (issue 4 item 5; anchors section 3, "LPIPS").

Two numbers per model (samples `<srcid>_<n>` of the SinGAN trained on `<srcid>`):
- diversity: mean LPIPS over all unordered pairs of its samples (0 for identical samples);
- to-training: mean LPIPS of each sample to its training image.
The SinGAN-Seg paper itself used LPIPS only inside FastGAN's loss (paper.md section 4);
this is an added measurement, reported under its own name.

Network: the `lpips` package (v0.1 linear heads ship with it), AlexNet by default ("best
forward scores", lpips README), VGG as an option. Inputs go to LPIPS in [-1, 1] (the
widespread range bug: PerceptualSimilarity #83, anchors section 3). The backbone's ImageNet
weights come from a weights folder or the torch hub cache (torchvision's file names);
where absent, LPIPS runs only with `weights="random"` (`lpips.LPIPS(pnet_rand=True)`,
seeded) and every result says `random-init`.

Sizes: samples of one model share a size (they come from one generator); a training
image is resized to its sample's size (bilinear, antialiased) before comparison,
because the real image is full resolution and the samples are ~250 px (paper.md section 4).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from singanseg.io import InputError
from singanseg.typed import ConfigError

from .features import image_index, load_rgb
from .inception import RANDOM_SEED, Provenance, WeightsError, hub_checkpoints, sha256_file

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}  # torchvision IMAGENET1K_V1


@dataclass(frozen=True)
class LPIPSOptions:
    net: Literal["alex", "vgg"] = "alex"  # lpips default
    weights: Literal["pretrained", "random"] = "pretrained"
    weights_dir: str | None = None
    max_pairs_per_model: int = 0  # 0 = all pairs; else the first pairs in id order
    # AlexNet's and VGG's pooling stages need about 64 px: smaller samples (the smoke
    # profile's 40 px SinGAN-Seg outputs) are upsampled bilinearly to this short side and the
    # output says so. 0 = never (tiny inputs then fail inside the backbone).
    min_side: int = 64

    def validate(self, where: str = "lpips") -> None:
        if self.max_pairs_per_model < 0:
            raise ConfigError(f"{where}.max_pairs_per_model: must be >= 0")
        if self.min_side < 0:
            raise ConfigError(f"{where}.min_side: must be >= 0")


def load_lpips(net: str = "alex", weights: str = "pretrained", weights_dir: str | os.PathLike | None = None, device="cpu"):
    """(lpips.LPIPS module, Provenance). The backbone is loaded from a local file, never downloaded."""
    import lpips
    import torchvision

    if net not in BACKBONE_FILES:
        raise ConfigError(f"lpips net: {net!r} is not one of {', '.join(BACKBONE_FILES)}")
    if weights not in ("pretrained", "random"):
        raise ConfigError(f"weights: {weights!r} is not one of 'pretrained', 'random'")
    torch.manual_seed(RANDOM_SEED)  # pnet_rand initialises the trunk at random: make it repeatable
    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if weights == "random":
        prov = Provenance("random-init", f"lpips {net} trunk random-init seed {RANDOM_SEED}; v0.1 linear heads")
    else:
        filename = BACKBONE_FILES[net]
        dirs = ([Path(weights_dir)] if weights_dir else []) + [hub_checkpoints()]
        path = next((d / filename for d in dirs if (d / filename).is_file()), None)
        if path is None:
            raise WeightsError(
                f"lpips {net}: {filename} not found in {', '.join(map(str, dirs))}; place torchvision's "
                "ImageNet file there (docs/weights.md) or set weights: random"
            )
        tv = torchvision.models.alexnet(weights=None) if net == "alex" else torchvision.models.vgg16(weights=None)
        try:
            tv.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, OSError, ValueError) as e:
            raise WeightsError(f"{path}: cannot load {net} weights ({str(e).splitlines()[0]})") from None
        # lpips keeps torchvision's `features` modules under slice<k>.<original index>
        feats = tv.features.state_dict()
        sd = {k: feats[k.split(".", 1)[1]] for k in model.net.state_dict()}
        model.net.load_state_dict(sd)
        prov = Provenance("pretrained", f"{path}; lpips v0.1 linear heads", sha256_file(path))
    return model.eval().requires_grad_(False).to(device), prov


def _tensor(arr: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    x = torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0) / 255.0
    if size is not None and tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x * 2 - 1  # LPIPS expects [-1, 1]


def group_by_model(ids) -> dict[str, list[str]]:
    """`<srcid>_<n>` -> {srcid: [ids]}; ids without a numeric suffix form one group "all"."""
    groups: dict[str, list[str]] = defaultdict(list)
    for i in sorted(ids):
        src, sep, n = i.rpartition("_")
        groups[src if sep and n.isdigit() else "all"].append(i)
    return dict(groups)


@torch.no_grad()
def sample_index(sample_dir: str | os.PathLike) -> dict[str, Path]:
    """The samples of `sample_dir`, checked before any network loads: a pairwise diversity
    needs at least 2."""
    idx = image_index(sample_dir)
    if len(idx) < 2:
        raise InputError(f"{sample_dir}: need at least 2 images for a pairwise diversity, got {len(idx)}")
    return idx


def lpips_diversity(
    sample_dir: str | os.PathLike,
    real_dir: str | os.PathLike | None = None,
    options: LPIPSOptions = LPIPSOptions(),
    model=None,
    provenance: Provenance | None = None,
    device: str = "cpu",
) -> dict:
    """Per model: mean pairwise LPIPS of its samples and (with `real_dir`) to its training image."""
    options.validate()
    idx = sample_index(sample_dir)
    if model is None:
        model, provenance = load_lpips(options.net, options.weights, options.weights_dir, device)
    real_idx = image_index(real_dir) if real_dir is not None else {}
    per_model = []
    upsampled: set[str] = set()
    for src, ids in group_by_model(idx).items():
        arrays = {i: load_rgb(idx[i]) for i in ids}
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) > 1:
            raise InputError(f"{sample_dir}: samples of model '{src}' differ in size ({sorted(shapes)})")
        h, w = next(iter(shapes))[:2]
        size = None
        if options.min_side and min(h, w) < options.min_side:
            k = options.min_side / min(h, w)
            size = (round(h * k), round(w * k))
            upsampled.add(f"{h}x{w}->{size[0]}x{size[1]}")
        tensors = {i: _tensor(a, size).to(device) for i, a in arrays.items()}
        pairs = list(itertools.combinations(ids, 2))
        if options.max_pairs_per_model:
            pairs = pairs[: options.max_pairs_per_model]
        row = {"model": src, "samples": len(ids), "pairs": len(pairs)}
        if pairs:
            row["diversity"] = float(np.mean([float(model(tensors[a], tensors[b])) for a, b in pairs]))
        if real_idx:
            if src not in real_idx:
                raise InputError(f"{sample_dir}: samples '{ids[0]}'... have no training image '{src}' in {real_dir}")
            real = _tensor(load_rgb(real_idx[src]), size or (h, w)).to(device)
            row["to_training"] = float(np.mean([float(model(real, t)) for t in tensors.values()]))
        per_model.append(row)
    div = [r["diversity"] for r in per_model if "diversity" in r]
    if not div:
        raise InputError(f"{sample_dir}: no model has 2 or more samples; pairwise diversity needs 2")
    out = {
        "metric": "lpips_diversity",
        "value": float(np.mean(div)),
        "std": float(np.std(div)),
        "count": len(idx),
        "models": len(per_model),
        "options": {"net": options.net, "weights": options.weights, "max_pairs_per_model": options.max_pairs_per_model,
                    "min_side": options.min_side},
        "upsampled": sorted(upsampled),  # sizes brought up to min_side (empty: none)
        **(provenance.as_dict() if provenance else {"weights": "unknown"}),
        "per_model": per_model,
    }
    tt = [r["to_training"] for r in per_model if "to_training" in r]
    if tt:
        out["to_training"] = float(np.mean(tt))
    return out


def per_model_csv(result: dict) -> str:
    # the csv module quotes a model id holding a comma or quote (ids are file names)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "samples", "pairs", "diversity", "to_training"])
    for r in result["per_model"]:
        w.writerow([r["model"], r["samples"], r["pairs"], r.get("diversity", ""), r.get("to_training", "")])
    return buf.getvalue()
