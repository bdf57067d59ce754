"""The claims table: every verdict is computed from the numbers, and follows them."""

import pandas as pd
import pytest

from pipeline.claims import (
    FAILS,
    HOLDS,
    claims_frame,
    sanity,
    singan_beats_gans_when_small,
    style_transfer_lowers_sifid,
    synthetic_close_to_real,
    synthetic_helps_when_scarce,
)


def seg(rows):
    """A load_segmentation-like frame from {(grid, experiment): [iou per fold]}."""
    out = []
    for (grid, exp), values in rows.items():
        for fold, v in enumerate(values):
            out.append({"grid": grid, "experiment": f"{grid}/{exp}", "fold": fold, "protocol": "paper",
                        "averaging": "per_image", "score": "iou", "value": v})
            # a clean-protocol row that must not be mixed in
            out.append({"grid": grid, "experiment": f"{grid}/{exp}", "fold": fold, "protocol": "clean",
                        "averaging": "per_image", "score": "iou", "value": 1 - v})
    return pd.DataFrame(out)


def test_sanity_needs_a_clear_margin_over_every_trivial_row():
    df = seg({("A", "REAL"): [0.5, 0.6], ("A", "TRIVIAL_BACKGROUND"): [0.0, 0.0], ("A", "TRIVIAL_MEAN_MASK"): [0.3, 0.3]})
    assert sanity(df).verdict == HOLDS  # 0.55 >= 0.3 + 0.1
    df = seg({("A", "REAL"): [0.35, 0.35], ("A", "TRIVIAL_MEAN_MASK"): [0.3, 0.3]})
    assert sanity(df).verdict == FAILS
    assert sanity(seg({("A", "REAL"): [0.5]})).verdict.startswith("not testable")


def test_synthetic_close_to_real_uses_the_best_fake_within_ten_percent():
    base = {("A", "REAL"): [0.60, 0.60], ("A", "FAKE_1"): [0.40, 0.40]}
    assert synthetic_close_to_real(seg(base)).verdict == FAILS
    c = synthetic_close_to_real(seg({**base, ("A", "FAKE_2_ST1to1000"): [0.55, 0.56]}))
    assert c.verdict == HOLDS and "FAKE_2_ST1to1000" in c.evidence
    # REAL+FAKE is not synthetic-only: it must not count
    assert synthetic_close_to_real(seg({**base, ("A", "REAL+FAKE_1"): [0.7, 0.7]})).verdict == FAILS


def test_scarce_claim_counts_wins_over_n_values():
    rows = {("B", "REAL_N5"): [0.2], ("B", "FAKE_N5"): [0.3], ("B", "REAL_N20"): [0.5], ("B", "FAKE_N20"): [0.4],
            ("B", "REAL+FAKE_N20"): [0.55], ("B", "TRIVIAL_MEAN_MASK_N5"): [0.9]}
    c = synthetic_helps_when_scarce(seg(rows))
    assert c.verdict == HOLDS and "N=5" in c.evidence and "N=20" in c.evidence
    rows[("B", "REAL+FAKE_N20")] = [0.45]
    assert synthetic_helps_when_scarce(seg(rows)).verdict == FAILS  # 1 win of 2 is not a majority


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


@pytest.mark.parametrize("empty", [True, False])
def test_claims_frame_has_one_row_per_claim_with_a_verdict(empty):
    df = seg({}) if empty else seg({("A", "REAL"): [0.5], ("A", "TRIVIAL_BACKGROUND"): [0.0]})
    if empty:
        df = pd.DataFrame(columns=["grid", "experiment", "fold", "protocol", "averaging", "score", "value"])
    out = claims_frame(df, {}, set())
    assert len(out) == 5 and list(out.columns) == ["rule", "evidence", "verdict"]
    assert all(v in (HOLDS, FAILS) or v.startswith("not testable") for v in out.verdict)
