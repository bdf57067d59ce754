"""FID between two sets of images (paper.md section 4, "FID [inferred]"; anchors section 3).

The authors left no FID script; the comparison with DCGAN / ProGAN / FastGAN was most
likely pytorch-fid at 2048-d pool3 (paper.md section 4), which we follow: the TF FID
Inception weights, bilinear resize to 299, global-average-pooled lower blocks for
`dims` 64/192/768 (pytorch-fid's `--dims`; their values are not comparable with 2048-d).

Statistics of a set are cached (`$SINGANSEG_CACHE/fid_stats/<key>/`, safetensors) under a
key hashing every input file's bytes and every option that changes the features, so the
real statistics are computed once for all synthetic sets. With fewer images than `dims`
the covariance is singular; the Fréchet distance is still defined (frechet.py) but the
estimate is biased and noisy, so the result carries a warning and `dims` (anchors section 3,
pitfall 2).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from singanseg.io import InputError
from singanseg.typed import ConfigError

from .fair import ResizeOptions
from .features import FeatureBank, pooled_features
from .frechet import StatisticsError, frechet_distance, gaussian_statistics
from .inception import InceptionFeatures, cache_dir, load_inception, sha256_file

FID_TAPS = {64: "pool1", 192: "pool2", 768: "mixed6e", 2048: "pool3"}  # pytorch-fid BLOCK_INDEX_BY_DIM


@dataclass(frozen=True)
class FIDOptions:
    dims: int = 2048  # pytorch-fid's default, pool3 (paper.md section 4)
    network: Literal["inception_fid", "inception_imagenet"] = "inception_fid"  # TF FID weights (pytorch-fid)
    weights: Literal["pretrained", "random"] = "pretrained"
    weights_dir: str | None = None
    batch_size: int = 50  # pytorch-fid's default
    eps: float = 0.0  # Fréchet regularisation (frechet.py); 0 = exact
    cache: bool = True  # cache set statistics by content hash
    # issue 23 s1: the resizing before Inception (metrics/fair.py). Default: the paper-inferred
    # pytorch-fid behaviour (bilinear straight to 299, no antialias); a profile may name another
    resize: ResizeOptions = field(default_factory=ResizeOptions)
    # issue 23 (quality's cost): how the Fréchet distance is computed. `eigen` (decided: frechet.py,
    # from the set statistics, three 2048-d eigenproblems: ~30 CPU-s per FID); `lowrank`: the same
    # distance from the two feature sets where each holds fewer images than dims (fair.fid_lowrank:
    # the nuclear norm of X1 X2^T, an SVD of n x m; measured 5e-16 relative from `eigen`, 130x less
    # CPU), `eigen` otherwise; eps must be 0
    frechet: Literal["eigen", "lowrank"] = "eigen"

    def validate(self, where: str = "fid") -> None:
        if self.dims not in FID_TAPS:
            raise ConfigError(f"{where}.dims: {self.dims} is not one of {', '.join(map(str, FID_TAPS))}")
        if self.frechet == "lowrank" and self.eps:
            raise ConfigError(f"{where}.frechet: lowrank computes the exact distance; it takes eps 0, got {self.eps}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: must be >= 1, got {self.batch_size}")
        self.resize.validate(f"{where}.resize")


@dataclass(frozen=True)
class SetStatistics:
    mu: np.ndarray
    sigma: np.ndarray
    count: int
    key: str
    cached: bool


def statistics_key(paths: Sequence[Path], options: FIDOptions, net: InceptionFeatures) -> str:
    """Hash of the inputs' bytes (by id, in id order) and of every feature-changing option."""
    h = hashlib.sha256()
    spec = {"dims": options.dims, "network": net.network, "resize": net.resize, "weights": net.provenance.as_dict()}
    if not options.resize.is_paper():  # the paper's default keeps the keys (and caches) it had
        spec["resize_before"] = {"size": options.resize.size, "antialias": options.resize.antialias}
    h.update(json.dumps(spec, sort_keys=True).encode())
    for p in paths:
        h.update(f"{Path(p).stem}:{sha256_file(Path(p))}\n".encode())
    return h.hexdigest()[:24]


def set_statistics(paths: Sequence[Path], net: InceptionFeatures, options: FIDOptions, device: str = "cpu", where: str = "fid",
                   bank: FeatureBank | None = None) -> SetStatistics:
    from singanseg.ckpt import CheckpointError, load_state, save_state

    if len(paths) < 2:
        raise InputError(f"{where}: need at least 2 images for a covariance, got {len(paths)}")
    key = statistics_key(paths, options, net)
    folder = cache_dir() / "fid_stats" / key
    if options.cache and (folder / "state.json").is_file():
        try:
            t, meta = load_state(folder)
            return SetStatistics(t["mu"].numpy(), t["sigma"].numpy(), int(meta["count"]), key, True)
        except (CheckpointError, KeyError):
            pass  # recompute and overwrite
    tap = FID_TAPS[options.dims]
    if bank is not None:  # the images' features stay for the stage's other metrics
        feats = bank.pooled(net, paths, tap, options.batch_size, device, options.resize)
    else:
        feats = pooled_features(net, paths, (tap,), options.batch_size, device, options.resize)[tap]
    try:
        mu, sigma = gaussian_statistics(feats, where)
    except StatisticsError as e:
        raise InputError(str(e)) from None
    if options.cache:
        try:
            save_state(folder, {"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma)}, {"count": len(paths), "dims": options.dims})
        except OSError:
            pass  # an unwritable cache only costs time
    return SetStatistics(mu, sigma, len(paths), key, False)


def fid_paths(
    paths_a: Sequence[Path],
    paths_b: Sequence[Path],
    options: FIDOptions = FIDOptions(),
    net: InceptionFeatures | None = None,
    device: str = "cpu",
    where: str = "fid",
    bank: FeatureBank | None = None,
) -> dict:
    """FID between two lists of image files; a JSON-ready summary with options and provenance."""
    options.validate()
    if net is None:
        net = load_inception(options.network, options.weights, options.weights_dir, resize=True, device=device)
    if options.frechet == "lowrank" and max(len(paths_a), len(paths_b)) < options.dims:
        a, b, value = _lowrank(paths_a, paths_b, net, options, device, where, bank)
    else:
        a = set_statistics(paths_a, net, options, device, f"{where} (set A)", bank)
        b = set_statistics(paths_b, net, options, device, f"{where} (set B)", bank)
        value = frechet_distance(a.mu, a.sigma, b.mu, b.sigma, eps=options.eps)
    out = {
        "metric": "fid",
        "value": value,
        "count": min(a.count, b.count),
        "count_a": a.count,
        "count_b": b.count,
        "dims": options.dims,
        "options": {k: getattr(options, k) for k in ("dims", "network", "weights", "eps")} | (
            {"frechet": "lowrank"} if options.frechet == "lowrank" and max(a.count, b.count) < options.dims else {}),
        "statistics_keys": [a.key, b.key],
        **net.provenance.as_dict(),
        "network": net.network,
    }
    if min(a.count, b.count) < options.dims:
        out["warning"] = (
            f"fewer images ({min(a.count, b.count)}) than feature dimensions ({options.dims}): the covariance "
            "is singular and the FID estimate is biased upwards; compare only values with the same count and dims"
        )
    return out


def _lowrank(paths_a, paths_b, net, options: FIDOptions, device, where: str, bank):
    """(set A, set B, distance) from the features (options.frechet: lowrank); the statistics are
    not formed (their cache is not read: it holds no features)."""
    from .fair import fid_lowrank

    tap, sets = FID_TAPS[options.dims], []
    for paths, name in ((paths_a, "set A"), (paths_b, "set B")):
        if len(paths) < 2:
            raise InputError(f"{where} ({name}): need at least 2 images for a covariance, got {len(paths)}")
        feats = (bank.pooled(net, paths, tap, options.batch_size, device, options.resize) if bank is not None
                 else pooled_features(net, paths, (tap,), options.batch_size, device, options.resize)[tap])  # fmt: skip
        if not np.isfinite(feats).all():
            raise InputError(f"{where} ({name}): features contain NaN or infinity")
        sets.append((SetStatistics(feats.mean(0), np.zeros((0, 0)), len(paths), statistics_key(paths, options, net), False), feats))
    (a, fa), (b, fb) = sets
    return a, b, fid_lowrank(fa, fb)


def fid_folders(dir_a: str | os.PathLike, dir_b: str | os.PathLike, options: FIDOptions = FIDOptions(), net=None, device="cpu") -> dict:
    from .features import image_index

    return fid_paths(list(image_index(dir_a).values()), list(image_index(dir_b).values()), options, net, device, f"fid {dir_a} vs {dir_b}")
