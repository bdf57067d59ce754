"""The claims table: every verdict is computed from the numbers, and follows them."""

from pipeline.report.claims import (
    FAILS,
    HOLDS,
    generator_claim,
    singan_beats_gans_when_small,
    style_transfer_lowers_sifid,
)
from pipeline.results.verdicts import INCONCLUSIVE, Interval


def test_style_transfer_claim_is_not_testable_with_a_random_vgg():
    sets = {"singan/gss0": {"sifid": 1.0}, "singan_st1to1000/gss0": {"sifid": 0.5}, "singan_st1to1/gss0": {"sifid": 1.2}}
    assert style_transfer_lowers_sifid(sets, {"imagenet"}).verdict == HOLDS
    assert style_transfer_lowers_sifid({**sets, "singan_st1to1000/gss0": {"sifid": 1.1}}, {"imagenet"}).verdict == FAILS
    c = style_transfer_lowers_sifid(sets, {"random-init"})
    assert c.verdict.startswith("not testable") and "random VGG16" in c.verdict and "0.500" in c.evidence


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
