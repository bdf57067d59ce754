"""Verdicts decided by intervals, one rule module for every claim of the report
(segmentation and generator claims alike). Seed version: the segmentation-evidence helper
owns this file and extends it; keep these names and meanings."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from singanseg.io import InputError

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its (1 - alpha) interval, e.g. a bootstrap percentile interval."""
    estimate: float
    low: float
    high: float
    level: float = 0.95


def beats(diff: Interval) -> str:
    """"A beats B" from the interval of A - B (larger is better): holds when the whole
    interval lies above 0, does not hold when it lies below 0, inconclusive otherwise."""
    if diff.low > 0:
        return HOLDS
    if diff.high < 0:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def non_inferior(diff: Interval, margin: float) -> str:
    """"A comes close to B" (non-inferiority) from the interval of A - B with margin > 0:
    holds when the lower bound is above -margin, does not hold when the upper bound is
    below -margin, inconclusive otherwise."""
    if margin <= 0:
        raise ValueError(f"non-inferiority margin must be > 0, got {margin}")
    if diff.low > -margin:
        return HOLDS
    if diff.high < -margin:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def not_testable(why: str) -> str:
    return f"{NOT_TESTABLE} ({why})"


def improves(diff: Interval, lower_is_better: bool) -> str:
    """"A beats B" for a metric of either direction, from the interval of A - B (FID/KID:
    lower is better, so A beats B when the whole interval lies below 0)."""
    if not lower_is_better:
        return beats(diff)
    return beats(Interval(-diff.estimate, -diff.high, -diff.low, diff.level))


def agree(verdicts: Mapping[str, str]) -> str:
    """The overall verdict of one claim over protocols: the common verdict where all agree;
    not testable where any is; inconclusive where they disagree (holds only where all hold)."""
    vs = list(verdicts.values())
    if len(set(vs)) == 1:
        return vs[0]
    if any(v.startswith(NOT_TESTABLE) for v in vs):
        return not_testable("; ".join(f"{k}: {v}" for k, v in verdicts.items() if v.startswith(NOT_TESTABLE)))
    if len(set(vs)) == 1:
        return vs[0]
    return INCONCLUSIVE


def fmt(iv: Interval, digits: int = 3) -> str:
    return f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


# ------------------------------------------------------------------ paired bootstrap


@dataclass(frozen=True)
class Bootstrap:
    """The one bootstrap of the report (written beside every table that uses it)."""
    resamples: int = 10000
    seed: int = 0
    level: float = 0.95
    # resample seeds within each trained cell as well as images: a seed's training run moves
    # every image of its model together, so averaging seeds first and resampling only images
    # treats 3 trained models as fixed and the interval misses the run-to-run variance
    # (tests/test_verdicts.py measures both under the null)
    resample_seeds: bool = True

    def describe(self) -> str:
        what = "test images (within each fold) and seeds (within each trained cell)" if self.resample_seeds \
            else "test images (within each fold), seeds averaged per image first"
        return (f"{self.level:.0%} paired percentile bootstrap over {what}, {self.resamples} resamples, "
                f"bootstrap seed {self.seed}")


@dataclass(frozen=True)
class Scores:
    """One experiment's per-image scores: per fold, the image ids and a (images, seeds) array."""
    folds: tuple[tuple[object, tuple[str, ...], np.ndarray], ...]

    def mean(self) -> float:
        return float(np.concatenate([v.mean(axis=1) for _, _, v in self.folds]).mean())


def scores_from_frame(df: pd.DataFrame, experiment_col: str = "experiment", score: str = "iou",
                      where: str = "per-image scores") -> dict[str, Scores]:
    """{experiment: Scores} from long-form per-image rows (columns experiment, fold, seed,
    image_id, <score>) of one grid, protocol, N and test set."""
    out = {}
    for exp, sub in df.groupby(experiment_col, sort=True):
        folds = []
        for fold, fsub in sub.groupby("fold", sort=True, dropna=False):
            wide = fsub.pivot_table(index="image_id", columns="seed", values=score, aggfunc="mean")
            if wide.isna().any().any():
                raise InputError(f"{where}: {exp} fold {fold}: not every seed scored every image")
            folds.append((fold, tuple(map(str, wide.index)), wide.to_numpy(dtype=float)))
        out[str(exp)] = Scores(tuple(folds))
    return out


class Estimates:
    """Bootstrap draws of linear contrasts of experiment means; intervals at any level."""

    def __init__(self, estimate: dict[str, float], draws: dict[str, np.ndarray], boot: Bootstrap):
        self.estimate, self.draws, self.boot = estimate, draws, boot

    def interval(self, name: str, level: float | None = None) -> Interval:
        level = self.boot.level if level is None else level
        lo, hi = np.quantile(self.draws[name], [(1 - level) / 2, (1 + level) / 2])
        return Interval(self.estimate[name], float(lo), float(hi), level)

    def p_value(self, name: str) -> float:
        """Two-sided bootstrap p-value of "the contrast is 0" (for Holm's ordering)."""
        d = self.draws[name]
        b = len(d)
        return min(1.0, 2 * min((np.sum(d <= 0) + 1) / (b + 1), (np.sum(d >= 0) + 1) / (b + 1)))


def paired_bootstrap(scores: Mapping[str, Scores], contrasts: Mapping[str, Mapping[str, float]],
                     boot: Bootstrap = Bootstrap()) -> Estimates:
    """Each contrast (sum of coef x experiment's mean score) with its bootstrap draws.

    Paired: one draw of test images (multinomial counts within each fold, the same for every
    experiment) weights every experiment, so a per-image difficulty shared by the experiments
    cancels. Seeds: drawn per (experiment, fold) cell, independently (different experiments'
    seeds are different training runs), their deviations from the per-image seed mean
    inflated by sqrt(S / (S - 1)) so that the bootstrap variance of a mean of S seeds is
    unbiased (a plain bootstrap of 3 values has 2/3 of it)."""
    names = sorted({e for c in contrasts.values() for e in c})
    missing = [e for e in names if e not in scores]
    if missing:
        raise InputError(f"per-image scores: no rows of {', '.join(missing)}")
    ref = scores[names[0]]
    layout = [(f, ids) for f, ids, _ in ref.folds]
    for e in names[1:]:
        if [(f, ids) for f, ids, _ in scores[e].folds] != layout:
            raise InputError(f"per-image scores: {e} and {names[0]} were not scored on the same test images")
    rng = np.random.default_rng(boot.seed)
    b = boot.resamples
    total = sum(len(ids) for _, ids in layout)
    counts = [rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=b) for _, ids in layout]
    means, draws_e = {}, {}
    for e in names:
        acc = np.zeros(b)
        for (_, _, v), c in zip(scores[e].folds, counts, strict=True):
            s = v.shape[1]
            per_image = v.mean(axis=1)
            if boot.resample_seeds and s > 1:
                dev = (v - per_image[:, None]) * np.sqrt(s / (s - 1))
                w = rng.multinomial(s, np.full(s, 1 / s), size=b) / s  # (b, s)
                m = per_image[None, :] + w @ dev.T  # (b, images)
            else:
                m = np.broadcast_to(per_image[None, :], (b, len(per_image)))
            acc += (c * m).sum(axis=1)
        draws_e[e] = acc / total
        means[e] = scores[e].mean()
    est = {k: sum(w * means[e] for e, w in c.items()) for k, c in contrasts.items()}
    draws = {k: sum(w * draws_e[e] for e, w in c.items()) for k, c in contrasts.items()}
    return Estimates(est, draws, boot)


def holm(est: Estimates, names: Sequence[str], alpha: float | None = None) -> dict[str, tuple[Interval, str]]:
    """Holm's step-down over the contrasts `names` (H0: each is 0), told by intervals: the
    r-th smallest p-value is tested with the (1 - alpha / (m - r)) interval, and once one is
    inconclusive every later one is too. Family-wise error <= alpha (each direction alpha/2).
    Returns {name: (interval at its Holm level, beats-verdict)}."""
    alpha = 1 - est.boot.level if alpha is None else alpha
    order = sorted(names, key=est.p_value)
    out, stopped = {}, False
    for r, name in enumerate(order):
        iv = est.interval(name, 1 - alpha / (len(order) - r))
        v = INCONCLUSIVE if stopped else beats(iv)
        stopped = stopped or v == INCONCLUSIVE
        out[name] = (iv, v)
    return {n: out[n] for n in names}


def holds_rate(rule: Callable[[object], str], simulate: Callable[[np.random.Generator], object],
               draws: int, seed: int = 0) -> float:
    """The fraction of `draws` simulated data sets on which `rule` says "holds": under a null,
    its false-"holds" rate (a calibrated rule: <= 5 %); under a true effect, its power."""
    rng = np.random.default_rng(seed)
    return sum(rule(simulate(rng)) == HOLDS for _ in range(draws)) / draws
