"""Reading images for the metrics and batched Inception feature extraction.

Images are looked up by id (file stem), never by directory order (conventions, data
contract; anchors 2.3: the official SIFID paired unsorted glob results). A metrics folder
is either a dataset folder holding `images/` or a flat folder of images.

Only RGB is accepted; RGBA loses its alpha channel, as the SinGAN-Seg SIFID script keeps
channels `0:3` (`SIFID/sifid_score.py`, paper.md section 4). Other modes (greyscale,
palette, 16-bit, CMYK) are refused instead of silently converted: a greyscale image in a
set of colour images is a data error that a colour metric should not hide.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from singanseg.io import IMAGE_SUFFIXES, InputError
from singanseg.typed import ConfigError

from .inception import TAPS, InceptionFeatures

ACCEPTED_MODES = ("RGB", "RGBA")
MIN_SIDE = 16  # smaller images give (next to) no Inception features at native size


def image_index(folder: str | os.PathLike) -> dict[str, Path]:
    """id -> image path for a dataset folder (`images/`) or a flat folder, sorted by id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    root = folder / "images" if (folder / "images").is_dir() else folder
    found: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in found:
            raise InputError(f"{p}: duplicate id '{p.stem}' (also {found[p.stem].name})")
        found[p.stem] = p
    if not found:
        raise InputError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return dict(sorted(found.items()))


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """uint8 (H, W, 3); RGBA drops alpha; other modes and tiny images raise InputError."""
    path = Path(path)
    try:
        with Image.open(path) as opened:
            opened.load()
            # as displayed (issue 26 item 7), as singanseg.io reads the images the models are
            # trained on; pytorch-fid reads as stored, which differs only for EXIF-rotated files
            im = ImageOps.exif_transpose(opened)
            mode = im.mode
            if mode not in ACCEPTED_MODES:
                raise InputError(f"{path}: image mode {mode} is not RGB (metrics take RGB or RGBA images)")
            arr = np.asarray(im, dtype=np.uint8)[..., :3].copy()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file") from None
    except OSError as e:
        raise InputError(f"{path}: unreadable image ({e})") from None
    if min(arr.shape[:2]) < MIN_SIDE:
        raise InputError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, smaller than {MIN_SIDE} px on a side")
    return arr


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1] (pytorch-fid's ToTensor)."""
    return torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0) / 255.0  # copies: read-only arrays are fine


def prepare(arr: np.ndarray, net: InceptionFeatures, resize=None) -> torch.Tensor:
    """One image as the network's input. `resize` (a fair.ResizeOptions, FID only): to its size
    (antialiased where it says), then to 299; None or the paper's default: bilinear straight to 299."""
    x = to_tensor(arr)
    if resize is not None and not resize.is_paper():
        from .fair import resize_tensor

        return resize_tensor(x, resize)
    if net.resize:
        # per image, so that sets of mixed sizes can be batched; identical to resizing inside
        # the network (pytorch-fid's F.interpolate bilinear, align_corners=False)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return x


@torch.no_grad()
def pooled_features(
    net: InceptionFeatures,
    paths: Sequence[Path],
    taps: Sequence[str] = ("pool3",),
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    resize=None,
) -> dict[str, np.ndarray]:
    """`paths` may hold (H, W, 3) uint8 arrays as well as files (the trivial generator and the
    resolution references of metrics/fair.py). (N, dims) float64 features per tap; spatial taps are global-average-pooled, as
    pytorch-fid does for dims < 2048 (`fid_score.py: get_activations`)."""
    if not net.resize:
        raise ConfigError("pooled_features: set-level features need resize=True (images of a set differ in size)")
    taps = tuple(taps)
    out: dict[str, list[np.ndarray]] = {t: [] for t in taps}
    for start in range(0, len(paths), batch_size):
        batch = torch.cat([prepare(p if isinstance(p, np.ndarray) else load_rgb(p), net, resize) for p in paths[start : start + batch_size]]).to(device)
        feats = net(batch, taps)
        for t in taps:
            f = feats[t]
            if f.shape[-2:] != (1, 1):
                f = F.adaptive_avg_pool2d(f, (1, 1))
            out[t].append(f.flatten(1).double().cpu().numpy())
    return {t: np.concatenate(v) if v else np.zeros((0, TAPS[t])) for t, v in out.items()}


@torch.no_grad()
def spatial_features(net: InceptionFeatures, arr: np.ndarray, tap: str, device: str | torch.device = "cpu") -> np.ndarray:
    """(H'·W', C) float64: every spatial position of one image's feature map is a sample,
    as SinGAN's SIFID (`sifid_score.py: get_activations`, reshape(H*W, C); anchors 2.3)."""
    f = net(prepare(arr, net).to(device), (tap,))[tap][0]
    return f.permute(1, 2, 0).reshape(-1, f.shape[0]).double().cpu().numpy()
