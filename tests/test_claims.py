"""The claims table: every verdict is computed from the numbers, and follows them."""

import numpy as np

from pipeline.report.claims import (
    FAILS,
    HOLDS,
    generator_claim,
    singan_beats_gans_when_small,
    style_transfer_lowers_sifid,
)
from pipeline.results.verdicts import INCONCLUSIVE, Interval


def _sifid_pairs(shift: float, shift_11: float = 0.0, n_real: int = 30, seed: int = 0):
    """Per-pair SIFID of a plain set and of two style-transferred sets of the same samples: ST
    1:1000 moves each sample's SIFID by `shift`, ST 1:1 by `shift_11` (plus per-sample noise)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    base = rng.gamma(4, 0.5, size=(n_real, 2))  # a per-sample difficulty shared by the three sets
    out = {}
    for name, d in (("singan/gss0", 0.0), ("singan_st1to1000/gss0", shift), ("singan_st1to1/gss0", shift_11)):
        v = base + d + rng.normal(0, 0.05, base.shape)
        out[name] = pd.DataFrame([{"real_id": f"r{i}", "synthetic_id": f"r{i}_{k}", "sifid": v[i, k]}
                                  for i in range(n_real) for k in range(2)])  # fmt: skip
    return out


def test_style_transfer_claim_is_decided_by_the_paired_interval_and_not_testable_with_random_weights():
    def sets(pairs):
        return {n: {"sifid": float(df.sifid.mean())} for n, df in pairs.items()}

    lower, none, higher = _sifid_pairs(-0.3), _sifid_pairs(0.0), _sifid_pairs(0.3, 0.3)
    c = style_transfer_lowers_sifid(sets(lower), {"vgg16|imagenet"}, lower)
    assert c.verdict == HOLDS and "ST 1:1000 − no ST" in c.evidence and "[" in c.evidence
    assert style_transfer_lowers_sifid(sets(higher), {"vgg16|imagenet"}, higher).verdict == FAILS
    # no true difference: the set means still differ a little, the interval says inconclusive
    assert style_transfer_lowers_sifid(sets(none), {"vgg16|imagenet"}, none).verdict == INCONCLUSIVE
    # without per-image SIFID the means are shown, not decided
    assert style_transfer_lowers_sifid(sets(lower), {"vgg16|imagenet"}).verdict.startswith("not testable")
    c = style_transfer_lowers_sifid(sets(lower), {"efficientnet_lite0|random"}, lower)
    assert c.verdict.startswith("not testable") and "random efficientnet_lite0" in c.verdict


def test_style_transfer_claim_compares_the_same_samples_when_only_some_were_styled():
    """With stylize.samples_per_model the styled sets hold fewer samples: the plain side is cut to them."""
    pairs = _sifid_pairs(0.0)
    # the plain set's sample 1 is much worse than sample 0; the styled sets hold sample 0 only,
    # 0.2 worse than the plain sample 0: on the same samples style transfer does not lower SIFID
    plain = pairs["singan/gss0"]
    pairs["singan/gss0"] = plain.assign(sifid=np.where(plain.synthetic_id.str.endswith("_1"), plain.sifid + 5.0, plain.sifid))
    for name in ("singan_st1to1000/gss0", "singan_st1to1/gss0"):
        first = plain[plain.synthetic_id.str.endswith("_0")]
        pairs[name] = first.assign(sifid=first.sifid + 0.2)
    sets = {n: {"sifid": float(df.sifid.mean())} for n, df in pairs.items()}
    assert style_transfer_lowers_sifid(sets, {"vgg16|imagenet"}, pairs).verdict == FAILS


def test_gan_claim_compares_with_baselines_trained_on_few_images_only():
    sets = {"singan/gss0": {"fid": 100.0}, "fastgan/n5": {"fid": 150.0}, "dcgan/nall": {"fid": 50.0}}
    assert singan_beats_gans_when_small(sets).verdict == HOLDS  # DCGAN on all images does not count
    assert singan_beats_gans_when_small({**sets, "fastgan/n20": {"fid": 90.0}}).verdict == FAILS
    assert singan_beats_gans_when_small({"singan/gss0": {"fid": 1.0}}).verdict.startswith("not testable")


def test_gan_claim_prefers_the_equal_size_comparison():
    sets = {"singan/gss0": {"fid": 100.0}, "fastgan/n5": {"fid": 150.0}}
    by_k = {"singan/gss0@K5": {"kid_mean": 0.5}, "fastgan/n5@K5": {"kid_mean": 0.7},
            "singan/gss0@K20": {"kid_mean": 0.4}, "fastgan/n20@K20": {"kid_mean": 0.6}, "dcgan/nall@K5": {"kid_mean": 0.1}}
    c = singan_beats_gans_when_small(sets, by_k=by_k)
    assert c.verdict == HOLDS and "K=5" in c.evidence and "K=20" in c.evidence and "KID" in c.rule
    by_k["singan/gss0@K20"] = {"kid_mean": 0.65}  # loses at one K: the claim is "at every K"
    assert singan_beats_gans_when_small(sets, by_k=by_k).verdict == FAILS


def test_generator_claim_is_decided_by_intervals_lower_is_better():
    claim = lambda d, **kw: generator_claim("c", "r", d, **kw).verdict  # noqa: E731
    assert claim({"K=5": Interval(-0.1, -0.2, -0.05), "K=20": Interval(-0.1, -0.3, -0.01)}) == HOLDS
    assert claim({"K=5": Interval(-0.1, -0.2, -0.05), "K=20": Interval(-0.1, -0.3, 0.01)}) == INCONCLUSIVE
    assert claim({"K=5": Interval(-0.1, -0.2, -0.05), "K=20": Interval(0.1, 0.05, 0.2)}) == FAILS
    assert claim({"K=5": Interval(-0.1, -0.2, -0.05)}, gate="baseline did not train").startswith("not testable")
