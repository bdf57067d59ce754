"""The interval rules are calibrated: simulated under the null, none says "holds" more than
5 % of the time; a true effect is detected; a point comparison in their place is not calibrated.

Simulation (sizes of the cpu profile's grid A: ~67 test images x 3 folds x 3 seeds): a
per-image difficulty shared by the experiments (correlation ~0.8 between experiments), a
per-(experiment, fold, seed) training-run effect (sd 0.02 IoU) and per-image noise (sd 0.1).
"""

import numpy as np
import pytest

from pipeline.results import verdicts as V
from pipeline.results.verdicts import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    Bootstrap,
    Interval,
    Scores,
    agree,
    beats,
    holds_rate,
    holm,
    improves,
    non_inferior,
    paired_bootstrap,
)

BOOT = Bootstrap(resamples=1000, seed=1)
DRAWS = 300


def simulate(rng, means, folds=3, images=67, seeds=3, run_sd=0.02, noise_sd=0.1):
    """{experiment: Scores}; experiment e's expected score is means[e] (scaled difficulty)."""
    difficulty = rng.beta(4, 2, size=(folds, images))  # mean 0.67, sd 0.18
    out = {}
    for e, m in means.items():
        fs = []
        for f in range(folds):
            v = (m / 0.6667) * difficulty[f][:, None] + rng.normal(0, run_sd, seeds)[None, :] \
                + rng.normal(0, noise_sd, (images, seeds))
            fs.append((f, tuple(f"{f}_{i}" for i in range(images)), v))
        out[e] = Scores(tuple(fs))
    return out


def beats_rule(boot=BOOT):
    def rule(s):
        return V.beats(paired_bootstrap(s, {"d": {"A": 1, "B": -1}}, boot).interval("d"))
    return rule


def ni_rule(s):  # FAKE - REAL > -0.1 x REAL at the lower bound
    return V.beats(paired_bootstrap(s, {"d": {"FAKE": 1, "REAL": -0.9}}, BOOT).interval("d"))


def test_the_interval_rules():
    assert beats(Interval(0.1, 0.01, 0.2)) == HOLDS and beats(Interval(-0.1, -0.2, -0.01)) == DOES_NOT_HOLD
    assert beats(Interval(0.1, -0.01, 0.2)) == INCONCLUSIVE
    assert non_inferior(Interval(-0.02, -0.05, 0.01), 0.06) == HOLDS
    assert non_inferior(Interval(-0.1, -0.2, -0.07), 0.06) == DOES_NOT_HOLD
    assert improves(Interval(-0.1, -0.2, -0.05), lower_is_better=True) == HOLDS
    assert improves(Interval(-0.1, -0.2, -0.05), lower_is_better=False) == DOES_NOT_HOLD
    assert agree({"paper": HOLDS, "clean": HOLDS}) == HOLDS
    assert agree({"paper": HOLDS, "clean": INCONCLUSIVE}) == INCONCLUSIVE
    assert agree({"paper": HOLDS, "clean": "not testable (x)"}).startswith("not testable")


def test_beats_is_calibrated_under_the_null_and_detects_an_effect():
    null = holds_rate(beats_rule(), lambda r: simulate(r, {"A": 0.65, "B": 0.65}), DRAWS)
    assert null <= 0.05
    power = holds_rate(beats_rule(), lambda r: simulate(r, {"A": 0.70, "B": 0.65}), 60, seed=1)
    assert power >= 0.8


def test_non_inferiority_is_calibrated_at_the_margin_and_detects_equality():
    null = holds_rate(ni_rule, lambda r: simulate(r, {"FAKE": 0.9 * 0.65, "REAL": 0.65}), DRAWS)
    assert null <= 0.05
    assert holds_rate(ni_rule, lambda r: simulate(r, {"FAKE": 0.65, "REAL": 0.65}), 60, seed=1) >= 0.8


def test_a_point_comparison_in_place_of_the_rule_fails_the_calibration_check(monkeypatch):
    monkeypatch.setattr(V, "beats", lambda d: HOLDS if d.estimate > 0 else DOES_NOT_HOLD)
    assert holds_rate(beats_rule(), lambda r: simulate(r, {"A": 0.65, "B": 0.65}), 100) > 0.3
    assert holds_rate(ni_rule, lambda r: simulate(r, {"FAKE": 0.9 * 0.65, "REAL": 0.65}), 100) > 0.3


def test_seeds_must_be_resampled_too():
    """Why the bootstrap resamples seeds: images alone miss the training-run variance."""
    images_only = Bootstrap(resamples=1000, seed=1, resample_seeds=False)
    rate = holds_rate(beats_rule(images_only), lambda r: simulate(r, {"A": 0.65, "B": 0.65}, run_sd=0.03), 200)
    assert rate > 0.05


def grid_b(rng, effect_at=None, ns=(5, 10, 20, 50)):
    means = {}
    for n in ns:
        for k in ("REAL", "FAKE", "REAL+FAKE"):
            means[f"{k}_N{n}"] = 0.5 + (0.08 if (n == effect_at and k == "FAKE") else 0.0)
    return simulate(rng, means, folds=1, images=133), ns


def scarce_rule(data, alpha=None):
    s, ns = data
    contrasts = {f"{k}_N{n}": {f"{k}_N{n}": 1, f"REAL_N{n}": -1} for n in ns for k in ("FAKE", "REAL+FAKE")}
    est = paired_bootstrap(s, contrasts, Bootstrap(resamples=2000, seed=2))
    if alpha == "none":  # each comparison at 95 %, no correction
        vs = [V.beats(est.interval(c)) for c in contrasts]
    else:
        vs = [v for _, v in holm(est, list(contrasts)).values()]
    return HOLDS if HOLDS in vs else INCONCLUSIVE


def test_holm_over_n_keeps_the_family_calibrated_and_uncorrected_is_not():
    assert holds_rate(scarce_rule, grid_b, 200) <= 0.05
    assert holds_rate(lambda d: scarce_rule(d, "none"), grid_b, 200) > 0.05
    assert holds_rate(scarce_rule, lambda r: grid_b(r, effect_at=5), 40, seed=3) >= 0.7


def test_bootstrap_is_paired_fixed_and_checks_images():
    s = simulate(np.random.default_rng(0), {"A": 0.6, "B": 0.6})
    a = paired_bootstrap(s, {"d": {"A": 1, "B": -1}}, BOOT).interval("d")
    assert a == paired_bootstrap(s, {"d": {"A": 1, "B": -1}}, BOOT).interval("d")
    single = paired_bootstrap(s, {"a": {"A": 1}}, BOOT).interval("a")
    assert a.high - a.low < (single.high - single.low)  # shared difficulty cancels
    bad = dict(s, B=Scores(s["B"].folds[:2]))
    with pytest.raises(V.InputError):
        paired_bootstrap(bad, {"d": {"A": 1, "B": -1}}, BOOT)
