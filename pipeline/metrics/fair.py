"""A fair comparison of generators (issue 23 section 1): one resolution, intervals, a noise
floor, held-out reals and a gate for generators that did not learn.

- `ResizeOptions` (`quality.fid.resize`): every set, reals included, is brought to one size
  before Inception. The paper-inferred default (pytorch-fid: bilinear straight to 299, no
  antialias) stays available; `antialias: true` low-passes a downsample (a 1348 px real goes
  to 299 without aliasing), and `size` < 299 first brings every set to that size, then
  bilinear to 299, so that every set carries the same bandwidth.
- `fid_lowrank`: the exact Fréchet distance from two feature sets with fewer samples than
  dimensions (K << 2048), in O(K² d): tr((S1 S2)^½) is the nuclear norm of X1 X2ᵀ / sqrt(c),
  X the centred features (the nonzero eigenvalues of X1ᵀX1 X2ᵀX2 are the squared singular
  values of X1 X2ᵀ). Same value as frechet.frechet_distance with eps 0; it makes a bootstrap
  of thousands of FIDs cheap.
- `bootstrap`: a percentile interval over fake sets (resampled with replacement) and real
  subsets (a K-subset of the real pool drawn without replacement for each set, when the pool
  holds more than K images; the K training reals otherwise, fixed by the protocol).
  Features are computed once; resampling is on features.
- `trivial_images`: the reals' mean colour plus Gaussian noise (their pixel std), the
  generator that learnt nothing but first and second pixel moments; `gate` marks a generator
  "did not train" unless it beats that generator by the interval.
- `gan_claim`: "SinGAN-Seg beats the other GANs when small" decided by intervals
  (pipeline/results/verdicts.py), returning (verdict, interval, which reals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from singanseg.typed import ConfigError

INCEPTION_SIZE = 299


@dataclass(frozen=True)
class ResizeOptions:
    size: int = INCEPTION_SIZE  # the common size every image is brought to before Inception
    antialias: bool = False  # paper-inferred (pytorch-fid): no antialias; true: low-pass on downsampling

    def is_paper(self) -> bool:
        return self.size == INCEPTION_SIZE and not self.antialias

    def validate(self, where: str = "fid.resize") -> None:
        if not 16 <= self.size <= 2048:
            raise ConfigError(f"{where}.size: must be in 16..2048, got {self.size}")

    def describe(self) -> str:
        if self.is_paper():
            return "bilinear straight to 299 px, no antialias (pytorch-fid, paper-inferred)"
        aa = "antialiased bilinear" if self.antialias else "bilinear (no antialias)"
        return f"{aa} to {self.size} px" + ("" if self.size == INCEPTION_SIZE else ", then bilinear to 299 px")


def resize_tensor(x: torch.Tensor, opts: ResizeOptions) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 3, 299, 299) through the common size."""
    s = opts.size
    if tuple(x.shape[-2:]) != (s, s):
        # antialiasing widens the kernel only where a side shrinks: an image upsampled on both
        # sides goes through the plain bilinear kernel, the same function (to ~2e-6 of torch's
        # separate antialias code path) and the same bits as SIFID's resize, so that one Inception
        # pass serves both metrics (metrics/features.py FeatureBank)
        aa = opts.antialias and (x.shape[-2] > s or x.shape[-1] > s)
        x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=aa)
    if s != INCEPTION_SIZE:
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return x


def down_and_back(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A real image brought to a generator's output size (h, w, antialiased) and back to its own
    size: what a perfect generator at that size would produce (the resolution-only row)."""
    h, w = arr.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    back = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return back[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def trivial_images(reals: Sequence[np.ndarray], count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """`count` images of (h, w): the reals' mean colour plus Gaussian noise of their per-channel
    pixel std, clipped to 0..255 (seeded)."""
    px = np.concatenate([np.asarray(r, np.float64).reshape(-1, 3) for r in reals])
    mean, std = px.mean(0), px.std(0)
    rng = np.random.default_rng(seed)
    return [np.clip(np.round(mean + std * rng.standard_normal((*size, 3))), 0, 255).astype(np.uint8) for _ in range(count)]


def fid_lowrank(real: np.ndarray, fake: np.ndarray) -> float:
    """Exact squared Fréchet distance of the two samples' Gaussians (unbiased covariances), O(n² d)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"fid: need at least 2 samples per set, got {n} and {m}")
    xc, yc = x - x.mean(0), y - y.mean(0)
    diff = x.mean(0) - y.mean(0)
    tr1, tr2 = (xc * xc).sum() / (n - 1), (yc * yc).sum() / (m - 1)
    nuc = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    return max(float(diff @ diff + tr1 + tr2 - 2.0 * nuc), 0.0)


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    from .equal_k import kid as _kid

    return _kid(real, fake)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"fid": fid_lowrank, "kid": kid}


@dataclass(frozen=True)
class BootstrapOptions:
    replicates: int = 500  # percentile bootstrap; features are reused, so this is cheap
    level: float = 0.95
    seed: int = 0

    def validate(self, where: str = "quality.gan_by_k.bootstrap") -> None:
        if self.replicates < 10:
            raise ConfigError(f"{where}.replicates: must be >= 10, got {self.replicates}")
        if not 0 < self.level < 1:
            raise ConfigError(f"{where}.level: must be in (0, 1), got {self.level}")


def _real_subsets(pool: np.ndarray, k: int, rng, count: int) -> list[np.ndarray]:
    if len(pool) <= k:
        return [pool[:k]] * count
    return [pool[rng.choice(len(pool), k, replace=False)] for _ in range(count)]


def replicates(pool: np.ndarray, fakes: Sequence[np.ndarray], k: int, metric: str, opts: BootstrapOptions,
               seed_offset: int = 0) -> np.ndarray:
    """(replicates,) bootstrap values of the mean over sets of `metric`(K reals, a set of K fakes).
    The same seed draws the same real subsets for every generator (a paired comparison)."""
    fn = METRICS[metric]
    rng = np.random.default_rng(opts.seed + seed_offset)
    out = np.empty(opts.replicates)
    for b in range(opts.replicates):
        sets = rng.integers(0, len(fakes), len(fakes))
        reals = _real_subsets(pool, k, rng, len(fakes))
        out[b] = np.mean([fn(r, fakes[s]) for r, s in zip(reals, sets, strict=True)])
    return out


def interval(estimate: float, reps: np.ndarray, level: float = 0.95):
    from pipeline.results.verdicts import Interval

    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(lo), float(hi), level)


def score(pool: np.ndarray, fakes: Sequence[np.ndarray], k: int, opts: BootstrapOptions) -> dict:
    """FID and KID (mean over sets against the first K of the pool) with bootstrap intervals, and
    the replicates (kept for paired differences)."""
    ref = pool[:k]
    out: dict = {"sets": len(fakes), "replicates": {}}
    for m in METRICS:
        est = float(np.mean([METRICS[m](ref, f) for f in fakes]))
        reps = replicates(pool, fakes, k, m, opts)
        iv = interval(est, reps, opts.level)
        out[f"{m}_mean"], out[f"{m}_low"], out[f"{m}_high"] = iv.estimate, iv.low, iv.high
        out["replicates"][m] = reps
    return out


def difference(worse: dict, better: dict, metric: str, level: float = 0.95):
    """Interval of worse - better (> 0: `better` is closer to the reals), paired replicates."""
    est = worse[f"{metric}_mean"] - better[f"{metric}_mean"]
    return interval(est, worse["replicates"][metric] - better["replicates"][metric], level)


DID_NOT_TRAIN = "did not train"
TRAINED = "trained"


def gate(row: dict, trivial: dict, metric: str = "kid", level: float = 0.95) -> tuple[str, object]:
    """'trained' when the generator's samples are closer to the reals than the trivial generator's
    (the interval of trivial - generator lies above 0), else 'did not train'."""
    from pipeline.results.verdicts import HOLDS, beats

    diff = difference(trivial, row, metric, level)
    return (TRAINED if beats(diff) == HOLDS else DID_NOT_TRAIN), diff


def gan_claim(rows: Sequence[dict], metric: str = "kid", level: float = 0.95, max_k: int = 50):
    """"SinGAN-Seg beats the other GANs when the training set is small", from quality's gan_by_k
    rows (with their `replicates`): per K <= max_k, SinGAN-Seg gss0 vs FastGAN_K, on held-out
    reals where both have them, else on the K training reals. Returns (verdict, interval of the
    worst K's difference FastGAN - SinGAN-Seg, which reals); NOT_TESTABLE (with the reason as the
    third element) when a baseline did not train or rows are missing."""
    from pipeline.results.verdicts import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, NOT_TESTABLE, beats

    by = {(r["k"], r["set"], r["reals"]): r for r in rows if r.get("replicates")}
    ks = sorted({k for k, s, _ in by if s == "singan/gss0" and k <= max_k})
    verdicts, worst, which = [], None, None
    for k in ks:
        for reals in ("held-out", "training"):
            a, b = by.get((k, "singan/gss0", reals)), by.get((k, f"fastgan/n{k}", reals))
            if a and b:
                break
        else:
            continue
        if b.get("gate") == DID_NOT_TRAIN:
            return NOT_TESTABLE, None, f"not testable (baseline did not train: FastGAN at K={k})"
        diff = difference(b, a, metric, level)
        verdicts.append(beats(diff))
        if worst is None or diff.low < worst.low:
            worst, which = diff, f"{reals} reals, K={k}, {metric.upper()}"
    if not verdicts:
        return NOT_TESTABLE, None, "not testable (no SinGAN-Seg and FastGAN rows at equal K)"
    v = HOLDS if all(x == HOLDS for x in verdicts) else DOES_NOT_HOLD if DOES_NOT_HOLD in verdicts else INCONCLUSIVE
    return v, worst, which
