"""Verdicts decided by intervals, one rule module for every claim of the report
(segmentation and generator claims alike). Seed version: the segmentation-evidence helper
owns this file and extends it; keep these names and meanings."""
from __future__ import annotations

from dataclasses import dataclass

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
