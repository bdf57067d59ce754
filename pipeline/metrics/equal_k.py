"""The GAN comparison at equal training size: FID and KID from K fakes vs the same K reals.

The paper's claim is that SinGAN-Seg beats DCGAN / Progressive GAN / FastGAN when training
data is small (paper.md section 6). The authors' FastGAN-4ch scripts train on the first K
images (`--num_imgs_to_train`, K = 5..50); comparing at equal size means, for each K
(issue 13 section 2; paper.md section 6, marked inferred):

- reals: the first K training ids in natural-sort order (`singanseg.io.list_pairs`, the
  order the baselines trained on);
- FastGAN_K: set s = its fakes s*K .. (s+1)*K-1 (natural-sort order of the sample ids);
- SinGAN-Seg on the same K images: its first K models (one per real image), set s = the
  s-th sample of each model, so at most `num_samples` sets exist;
- DCGAN / Progressive GAN / any `<gan>/nall` (trained on every image): reference rows,
  scored the same way against the same K reals;
- each score is averaged over `sets` (4) such sets; fewer when the fakes run out, which
  the row says.

FID from K << 2048 images is biased upwards (singular covariance, anchors section 3 pitfall
2), so KID sits beside it: the unbiased MMD² with the cubic polynomial kernel
k(x, y) = (x·y / d + 1)³ of Binkowski et al. (2018), as torchmetrics'
`KernelInceptionDistance` computes it (`poly_mmd`), on the same Inception features as FID.
With K reals and K fakes and subset size K, every torchmetrics subset is a permutation of
the whole set, so its value is exactly the full-set estimate computed here (deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from singanseg.io import InputError, natural_sorted
from singanseg.typed import ConfigError

from .fair import BootstrapOptions
from .features import pooled_features
from .fid import FID_TAPS, FIDOptions, statistics_key
from .frechet import StatisticsError, frechet_distance, gaussian_statistics
from .inception import InceptionFeatures, cache_dir

KID_KERNEL = "polynomial (x.y/d + 1)^3, unbiased MMD^2 (torchmetrics KernelInceptionDistance, subset size K)"


@dataclass(frozen=True)
class EqualKOptions:
    enabled: bool = True
    sets: int = 4  # issue 13 s2 / paper.md s6 [inferred]: FID averaged over 4 sets of K fakes
    kid: bool = True  # KID beside FID: unbiased at small K
    # issue 23 s1: percentile intervals over fake sets and real subsets (metrics/fair.py)
    bootstrap: BootstrapOptions = field(default_factory=BootstrapOptions)

    def validate(self, where: str = "quality.gan_by_k") -> None:
        if self.sets < 1:
            raise ConfigError(f"{where}.sets: must be >= 1, got {self.sets}")
        self.bootstrap.validate(f"{where}.bootstrap")


def set_features(paths: Sequence[Path], net: InceptionFeatures, options: FIDOptions, device: str = "cpu", bank=None) -> np.ndarray:
    """(N, dims) Inception features of a list of images, cached by content like FID's statistics
    (`$SINGANSEG_CACHE/fid_features/<key>/`; the same key as `fid.set_statistics`)."""
    from singanseg.ckpt import CheckpointError, load_state, save_state

    key = statistics_key(paths, options, net)
    folder = cache_dir() / "fid_features" / key
    if options.cache and (folder / "state.json").is_file():
        try:
            return load_state(folder)[0]["features"].numpy()
        except (CheckpointError, KeyError):
            pass  # recompute and overwrite
    tap = FID_TAPS[options.dims]
    if bank is not None:  # features.FeatureBank: images another metric of the stage passed through Inception
        feats = bank.pooled(net, list(paths), tap, options.batch_size, device, options.resize)
    else:
        feats = pooled_features(net, list(paths), (tap,), options.batch_size, device, options.resize)[tap]
    if options.cache:
        try:
            save_state(folder, {"features": torch.from_numpy(feats)}, {"count": len(paths), "dims": options.dims})
        except OSError:
            pass  # an unwritable cache only costs time
    return feats


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel between equal-size feature sets (torchmetrics `poly_mmd`)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise StatisticsError(f"kid: expected two (K, d) feature sets of the same shape, got {x.shape} and {y.shape}")
    m, d = x.shape
    if m < 2:
        raise StatisticsError(f"kid: need at least 2 samples per set, got {m}")
    kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def fid_features(real: np.ndarray, fake: np.ndarray, eps: float = 0.0, where: str = "fid", frechet: str = "eigen") -> float:
    if frechet == "lowrank" and max(len(real), len(fake)) < np.shape(real)[1]:  # FIDOptions.frechet: the same distance
        from .fair import fid_lowrank

        for x, name in ((real, "reals"), (fake, "fakes")):
            if len(x) < 2:
                raise StatisticsError(f"{where} ({name}): need at least 2 samples for a covariance, got {len(x)}")
            if not np.isfinite(x).all():
                raise StatisticsError(f"{where} ({name}): features contain NaN or infinity")
        return fid_lowrank(real, fake)
    mu1, s1 = gaussian_statistics(real, f"{where} (reals)")
    mu2, s2 = gaussian_statistics(fake, f"{where} (fakes)")
    return frechet_distance(mu1, s1, mu2, s2, eps=eps)


def baseline_sets(fake_ids: Sequence[str], k: int, sets: int) -> list[list[str]]:
    """Set s = fakes s*K .. (s+1)*K-1 in natural-sort order; as many whole sets as exist, at most `sets`."""
    ids = natural_sorted(fake_ids)
    return [ids[s * k : (s + 1) * k] for s in range(min(sets, len(ids) // k))]


def singan_sets(fake_ids: Sequence[str], real_ids: Sequence[str], sets: int, where: str) -> list[list[str]]:
    """Set s = the s-th sample (natural-sort order) of each of the models of `real_ids`."""
    per_model: dict[str, list[str]] = {r: [] for r in real_ids}
    for i in natural_sorted(fake_ids):
        src, sep, n = i.rpartition("_")
        if sep and n.isdigit() and src in per_model:
            per_model[src].append(i)
    absent = [r for r, v in per_model.items() if not v]
    if absent:
        raise InputError(f"{where}: no samples of the model(s) of real id(s) {', '.join(absent[:5])}"
                         f"{' ...' if len(absent) > 5 else ''} (needed for the first {len(real_ids)} images)")  # fmt: skip
    n = min(sets, *(len(v) for v in per_model.values()))
    return [[per_model[r][s] for r in real_ids] for s in range(n)]


def score(real: np.ndarray, fakes: Sequence[np.ndarray], options: FIDOptions, with_kid: bool, where: str) -> dict:
    """FID (and KID) of each fake set against the reals; mean and sample std over the sets."""
    fid = [fid_features(real, f, options.eps, where, options.frechet) for f in fakes]
    out: dict = {"sets": len(fakes), "fid_per_set": fid, "fid_mean": float(np.mean(fid)),
                 "fid_std": float(np.std(fid, ddof=1)) if len(fid) > 1 else None}  # fmt: skip
    if with_kid:
        kids = [kid(real, f) for f in fakes]
        out.update(kid_per_set=kids, kid_mean=float(np.mean(kids)),
                   kid_std=float(np.std(kids, ddof=1)) if len(kids) > 1 else None)  # fmt: skip
    return out
