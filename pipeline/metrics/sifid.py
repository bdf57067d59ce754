"""Single-image FID (SIFID) per (real, synthetic) pair (paper.md section 4; anchors 2.3).

Per image, every spatial position of an Inception feature map is one sample; the Fréchet
distance is taken between the Gaussians of one real and one synthetic image, then averaged
over pairs. Options, each recorded with the result:
- `dims`: 64 = Conv2d_2b_3x3 before the first max-pool (the official SinGAN code and the
  SinGAN-Seg authors' `SIFID/sifid_score.py` call dims=64), 192 = before the second
  max-pool (the SinGAN paper's text; tamarott/SinGAN issue #155).
- `resize`: True = bilinear to 299x299, the SinGAN-Seg authors' change
  (`InceptionV3([block_idx], resize_input=True)`); False = native size (SinGAN's).
- `network`: `inception_imagenet` (torchvision ImageNet weights: the authors' network) or
  `inception_fid` (the TF FID weights: available offline; a different, named variant).
Pairs are made by explicit id: synthetic `<srcid>_<n>` pairs with real `<srcid>`, or equal
ids pair one-to-one. Never by position: the authors paired by unsorted glob order.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from singanseg.io import InputError
from singanseg.typed import ConfigError

from .features import FeatureBank, image_index, spatial_features
from .frechet import StatisticsError, frechet_distance, gaussian_statistics
from .inception import InceptionFeatures, load_inception

SIFID_TAPS = {64: "conv2b", 192: "conv4a"}


@dataclass(frozen=True)
class SIFIDOptions:
    dims: int = 64  # official SinGAN / SinGAN-Seg `sifid_score.py` (anchors 2.3, paper.md section 4)
    resize: bool = True  # SinGAN-Seg authors' `resize_input=True` (paper.md section 4)
    network: Literal["inception_imagenet", "inception_fid"] = "inception_imagenet"  # `models.inception_v3(pretrained=True)`
    weights: Literal["pretrained", "random"] = "pretrained"
    weights_dir: str | None = None  # folder holding torchvision / pytorch-fid weight files
    eps: float = 0.0  # Fréchet regularisation (frechet.py); 0 = exact
    batch_size: int = 50  # images per Inception pass (resize=True); values do not depend on it

    def validate(self, where: str = "sifid") -> None:
        if self.dims not in SIFID_TAPS:
            raise ConfigError(f"{where}.dims: {self.dims} is not one of {', '.join(map(str, SIFID_TAPS))}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: must be >= 1, got {self.batch_size}")


def pair_ids(real_ids, fake_ids, where: str = "sifid") -> list[tuple[str, str]]:
    """(real id, synthetic id) pairs by explicit id; unpaired ids raise InputError."""
    real, fake = sorted(set(real_ids)), sorted(set(fake_ids))
    if not fake:
        raise InputError(f"{where}: no synthetic images")
    if set(fake) <= set(real):
        # one-to-one by identical ids: both sets must be the same
        if len(fake) != len(real):
            missing = sorted(set(real) - set(fake))
            raise InputError(
                f"{where}: {len(real)} real but {len(fake)} synthetic images; pairs by identical id need "
                f"the same ids (real '{missing[0]}' has no synthetic image)"
            )
        return [(i, i) for i in real]
    pairs = []
    known = set(real)
    for f in fake:
        if f in known:  # an exact id first: a real `x_1` is the pair of synthetic `x_1`, not `x`
            pairs.append((f, f))
            continue
        src, sep, n = f.rpartition("_")
        if not sep or not n.isdigit() or src not in known:
            raise InputError(
                f"{where}: synthetic id '{f}' pairs with no real image (expected '<real id>_<n>' "
                f"or an identical id; {len(real)} real ids, e.g. '{real[0]}')"
            )
        pairs.append((src, f))
    return pairs


def sifid_from_arrays(real: np.ndarray, fake: np.ndarray, net: InceptionFeatures, dims: int = 64, eps: float = 0.0, device="cpu") -> float:
    """SIFID of one pair of uint8 RGB arrays (H, W, 3)."""
    tap = SIFID_TAPS[dims]
    mu1, s1 = gaussian_statistics(spatial_features(net, real, tap, device), "real features")
    mu2, s2 = gaussian_statistics(spatial_features(net, fake, tap, device), "synthetic features")
    return frechet_distance(mu1, s1, mu2, s2, eps=eps)


@dataclass(frozen=True)
class SIFIDResult:
    rows: list[tuple[str, str, float]]  # (real id, synthetic id, sifid)
    options: SIFIDOptions
    provenance: Mapping[str, str | None]

    @property
    def values(self) -> np.ndarray:
        return np.array([r[2] for r in self.rows], dtype=np.float64)

    def summary(self) -> dict:
        v = self.values
        return {
            "metric": "sifid",
            # population std (numpy's default), as a summary of the authors' SIFID.npy would be
            "value": float(v.mean()),
            "std": float(v.std()),
            "min": float(v.min()),
            "max": float(v.max()),
            "count": int(v.size),
            "real_count": len({r[0] for r in self.rows}),
            "options": {k: getattr(self.options, k) for k in ("dims", "resize", "network", "weights", "eps")},
            **dict(self.provenance),
        }

    def to_csv(self) -> str:
        # the csv module quotes an id holding a comma or quote (ids are file names)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["real_id", "synthetic_id", "sifid"])
        w.writerows((a, b, f"{v:.8g}") for a, b, v in self.rows)
        return buf.getvalue()


def sifid_folders(
    real_dir: str | os.PathLike,
    fake_dir: str | os.PathLike,
    options: SIFIDOptions = SIFIDOptions(),
    net: InceptionFeatures | None = None,
    device: str = "cpu",
    bank: FeatureBank | None = None,
) -> SIFIDResult:
    """SIFID for every synthetic image of `fake_dir` against its real image in `real_dir`.
    `bank` (features.FeatureBank): the real images' statistics computed once for every set
    scored with the same bank, and synthetic ones another metric already passed through
    Inception; a synthetic image's statistics leave the bank once used."""
    options.validate()
    real_idx, fake_idx = image_index(real_dir), image_index(fake_dir)
    pairs = pair_ids(real_idx, fake_idx, f"sifid {fake_dir}")
    if net is None:
        net = load_inception(options.network, options.weights, options.weights_dir, resize=options.resize, device=device)
    elif net.resize != options.resize:
        raise ConfigError(f"sifid: the given network resizes={net.resize} but options.resize={options.resize}")
    tap = SIFID_TAPS[options.dims]
    bank = bank if bank is not None else FeatureBank()
    # batched passes (a real image's statistics serve all its samples); the same values as one
    # image at a time (`sifid_from_arrays`)
    fakes = [fake_idx[f] for _, f in pairs]
    bank.compute(net, [real_idx[r] for r in dict.fromkeys(r for r, _ in pairs)] + fakes, spatial=tap,
                 batch_size=options.batch_size, device=device)  # fmt: skip
    rows = []
    for rid, fid in pairs:
        try:
            mu1, s1 = bank.spatial(net, real_idx[rid], tap, options.batch_size, device)
            mu2, s2 = bank.spatial(net, fake_idx[fid], tap, options.batch_size, device)
            rows.append((rid, fid, frechet_distance(mu1, s1, mu2, s2, eps=options.eps)))
        except StatisticsError as e:
            raise InputError(f"sifid pair ({rid}, {fid}): {e}") from None
    bank.forget_spatial(net, fakes, tap)
    prov = {**net.provenance.as_dict(), "network": net.network}
    return SIFIDResult(rows, options, prov)
