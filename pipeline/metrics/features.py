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

import hashlib
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
        batch = torch.cat([prepare(_array(p), net, resize) for p in paths[start : start + batch_size]]).to(device)
        feats = net(batch, taps)
        for t in taps:
            out[t].append(_pooled(feats[t]).double().cpu().numpy())
    return {t: np.concatenate(v) if v else np.zeros((0, TAPS[t])) for t, v in out.items()}


def _array(item) -> np.ndarray:
    return item if isinstance(item, np.ndarray) else load_rgb(item)


def _pooled(f: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C), global-average-pooled where spatial (pytorch-fid's dims < 2048)."""
    if f.shape[-2:] != (1, 1):
        f = F.adaptive_avg_pool2d(f, (1, 1))
    return f.flatten(1)


def _spatial(f: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> (H·W, C) float64 samples (SIFID)."""
    return f.permute(1, 2, 0).reshape(-1, f.shape[0]).double().cpu().numpy()


@torch.no_grad()
def spatial_features(net: InceptionFeatures, arr: np.ndarray, tap: str, device: str | torch.device = "cpu") -> np.ndarray:
    """(H'·W', C) float64: every spatial position of one image's feature map is a sample,
    as SinGAN's SIFID (`sifid_score.py: get_activations`, reshape(H*W, C); anchors 2.3)."""
    return _spatial(net(prepare(arr, net).to(device), (tap,))[tap][0])


def item_key(item) -> tuple:
    """An image's identity in a FeatureBank: a file by its absolute path (a stage's inputs do
    not change while it runs), an array by its shape and bytes."""
    if isinstance(item, np.ndarray):
        a = np.ascontiguousarray(item)
        return ("array", a.shape, a.dtype.str, hashlib.sha1(a.tobytes()).hexdigest())
    return ("file", os.path.abspath(item))


def _resize_key(resize) -> tuple | None:
    return None if resize is None or resize.is_paper() else (resize.size, resize.antialias)


class FeatureBank:
    """Every image's Inception features computed once per stage run (issue 23: the quality stage
    passed the same images through Inception up to five times).

    - `pooled`: (N, dims) features of a tap (global-average-pooled where spatial), as
      `pooled_features` returns them, per image and per (network, tap, resize); what FID's set
      statistics, the equal-K sets and the reference rows share (the reals, a generator's sets
      of K fakes out of the images its FID already passed through).
    - `spatial`: per image the SIFID statistics (mean and covariance of the H'·W' positions of a
      spatial tap, `spatial_features` + `gaussian_statistics`), per (network, tap); a real image
      serves every set made from it.
    - `compute(..., pooled=..., spatial=...)` asks for both: where the network's input for the
      two is the same tensor (the same network, and SIFID's bilinear resize equals FID's resize
      for this image: `fair.resize_tensor` on an upsampled image), one forward pass through the
      deeper tap returns both; otherwise two passes, as before.
    Features do not depend on the batch an image is in: Inception's layers treat batch items
    independently (batch statistics are frozen: eval mode); tests/test_quality_bank.py checks
    the stage's numbers against the metrics computed one by one.
    """

    def __init__(self) -> None:
        self._pooled: dict[tuple, np.ndarray] = {}  # float32 rows: the network's output, exact
        self._spatial: dict[tuple, tuple | Exception] = {}
        self.passes = {"pooled": 0, "spatial": 0, "shared": 0}  # images through the network, by kind

    @torch.no_grad()
    def compute(self, net: InceptionFeatures, items: Sequence, pooled: tuple[str, object] | None = None,
                spatial: str | None = None, batch_size: int = 50, device: str | torch.device = "cpu") -> None:
        """Fill the bank for `items`: `pooled` = (tap, resize options) and/or `spatial` = tap."""
        from .frechet import StatisticsError, gaussian_statistics

        todo: dict[tuple, object] = {}
        for it in items:
            k = item_key(it)
            if (pooled and (id(net), pooled[0], _resize_key(pooled[1]), k) not in self._pooled) or (
                    spatial and (id(net), spatial, k) not in self._spatial):  # fmt: skip
                todo.setdefault(k, it)
        keys = list(todo)
        for start in range(0, len(keys), batch_size):
            groups: dict[tuple, list] = {}  # (taps, input shape) -> [(key, item, input)]
            for k in keys[start : start + batch_size]:
                it = todo[k]
                arr = _array(it)
                pk = (id(net), pooled[0], _resize_key(pooled[1]), k) if pooled else None
                need_p = pooled is not None and pk not in self._pooled
                need_s = spatial is not None and (id(net), spatial, k) not in self._spatial
                xp = prepare(arr, net, pooled[1]) if need_p else None
                xs = prepare(arr, net) if need_s else None
                if need_p and need_s and xp.shape == xs.shape and torch.equal(xp, xs):
                    groups.setdefault(((spatial, pooled[0]), tuple(xp.shape)), []).append((k, it, xp))
                    continue
                if need_p:
                    groups.setdefault(((pooled[0],), tuple(xp.shape)), []).append((k, it, xp))
                if need_s:
                    groups.setdefault(((spatial,), tuple(xs.shape)), []).append((k, it, xs))
            for (taps, _), group in groups.items():
                feats = net(torch.cat([x for _, _, x in group]).to(device), taps)
                kind = "shared" if len(taps) == 2 else "spatial" if taps == (spatial,) else "pooled"
                self.passes[kind] += len(group)
                if pooled and pooled[0] in taps:
                    rows = _pooled(feats[pooled[0]]).cpu().numpy()
                    for (k, _, _), row in zip(group, rows, strict=True):
                        self._pooled[(id(net), pooled[0], _resize_key(pooled[1]), k)] = row
                if spatial in taps:
                    for (k, it, _), f in zip(group, feats[spatial], strict=True):
                        try:
                            st = gaussian_statistics(_spatial(f), str(it) if not isinstance(it, np.ndarray) else "image")
                        except StatisticsError as e:
                            st = e
                        self._spatial[(id(net), spatial, k)] = st

    def pooled(self, net: InceptionFeatures, items: Sequence, tap: str = "pool3", batch_size: int = 50,
               device: str | torch.device = "cpu", resize=None) -> np.ndarray:
        """(N, dims) float64, the values `pooled_features(net, items, (tap,), ...)[tap]` returns."""
        if not net.resize:
            raise ConfigError("pooled_features: set-level features need resize=True (images of a set differ in size)")
        self.compute(net, items, pooled=(tap, resize), batch_size=batch_size, device=device)
        rk = _resize_key(resize)
        rows = [self._pooled[(id(net), tap, rk, item_key(it))] for it in items]
        return np.stack(rows).astype(np.float64) if rows else np.zeros((0, TAPS[tap]))

    def spatial(self, net: InceptionFeatures, item, tap: str, batch_size: int = 50, device: str | torch.device = "cpu"):
        """(mean, covariance) of one image's spatial features at `tap`; raises the StatisticsError
        that `gaussian_statistics` raised for it."""
        k = item_key(item)
        if (id(net), tap, k) not in self._spatial:
            self.compute(net, [item], spatial=tap, batch_size=batch_size, device=device)
        st = self._spatial[(id(net), tap, k)]
        if isinstance(st, Exception):
            raise st
        return st

    def forget_spatial(self, net: InceptionFeatures, items: Sequence, tap: str) -> None:
        """Drop images' SIFID statistics once used (a synthetic image is scored once)."""
        for it in items:
            self._spatial.pop((id(net), tap, item_key(it)), None)
