"""Issue 23 section 1: the common-resolution option, the bootstrap intervals, the trivial-generator
gate, the GAN claim by intervals, and the empty-mask fractions (metrics/fair.py, metrics/masks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics import fair
from pipeline.metrics.features import pooled_features
from pipeline.metrics.frechet import frechet_distance, gaussian_statistics
from pipeline.metrics.inception import load_inception
from pipeline.metrics.masks import distribution
from pipeline.results.verdicts import DOES_NOT_HOLD, HOLDS, NOT_TESTABLE


@pytest.fixture(scope="module")
def net():
    return load_inception("inception_fid", "random", None, resize=True)


def _pool1(net, imgs, resize):
    return pooled_features(net, imgs, ("pool1",), 8, "cpu", resize)["pool1"]


def test_antialias_changes_a_checkerboard_and_not_a_smooth_image(net):
    n = 1000  # 1-px checkerboard (3.34x down; at exactly 2x bilinear averages too): aliased bilinear to 299 keeps a pattern, antialiased averages it to grey
    checker = ((np.indices((n, n)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    yy, xx = np.mgrid[0:n, 0:n] / n
    smooth = (np.stack([xx, yy, 0.5 * (xx + yy)], -1) * 255).astype(np.uint8)
    paper, aa = fair.ResizeOptions(), fair.ResizeOptions(antialias=True)
    assert paper.is_paper() and not aa.is_paper() and "antialiased" in aa.describe()
    c_p, c_a = _pool1(net, [checker], paper), _pool1(net, [checker], aa)
    s_p, s_a = _pool1(net, [smooth], paper), _pool1(net, [smooth], aa)
    grey = _pool1(net, [np.full((n, n, 3), 127, np.uint8)], paper)
    d = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    assert d(c_p, c_a) > 20 * d(s_p, s_a)
    assert d(c_a, grey) < d(c_p, grey)  # antialiased: the checkerboard is (nearly) flat grey
    # None and the paper's options are the same pipeline (bilinear straight to 299)
    assert np.allclose(_pool1(net, [smooth], None), s_p)


def test_fid_lowrank_is_the_frechet_distance():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 40)), rng.normal(0.3, 1.2, size=(9, 40))
    ref = frechet_distance(*gaussian_statistics(x), *gaussian_statistics(y))
    assert fair.fid_lowrank(x, y) == pytest.approx(ref, rel=1e-8)


def _feats(rng, k, shift):
    return rng.normal(shift, 1.0, size=(k, 16))


def test_intervals_shrink_with_more_sets_and_contain_the_estimate():
    rng = np.random.default_rng(1)
    k, pool = 8, _feats(rng, 64, 0.0)
    opts = fair.BootstrapOptions(replicates=200)
    widths = []
    for sets in (2, 8, 32):
        fakes = [_feats(rng, k, 0.4) for _ in range(sets)]
        res = fair.score(pool, fakes, k, opts)
        assert res["kid_low"] <= res["kid_high"] and res["fid_low"] <= res["fid_high"]
        widths.append((res["kid_high"] - res["kid_low"], res["fid_high"] - res["fid_low"]))
    assert widths[2][0] < widths[0][0] and widths[2][1] < widths[0][1]


def test_gate_flags_noise_and_passes_reals():
    rng = np.random.default_rng(2)
    k, opts = 8, fair.BootstrapOptions(replicates=200)
    pool = _feats(rng, 80, 0.0)
    held_out = [pool[40 + 8 * s : 48 + 8 * s] for s in range(4)]  # reals as a "generator"
    score = lambda fakes: fair.score(pool[:40], fakes, k, opts)  # noqa: E731
    trivial = score([_feats(rng, k, 1.0) for _ in range(4)])
    noise = score([_feats(rng, k, 3.0) for _ in range(4)])
    reals = score(held_out)
    assert fair.gate(reals, trivial)[0] == fair.TRAINED
    assert fair.gate(noise, trivial)[0] == fair.DID_NOT_TRAIN


def test_trivial_images_and_resolution_reference():
    real = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    t = fair.trivial_images([real], 3, (20, 30))
    assert len(t) == 3 and t[0].shape == (20, 30, 3) and abs(t[0].mean() - real.mean()) < 10
    back = fair.down_and_back(real, (15, 20))
    assert back.shape == real.shape and back.std() < real.std()  # blurred: high frequencies gone


def _row(k, name, reals, est, spread, gate=None, n=100):
    reps = np.random.default_rng(k).normal(est, spread, n)
    r = {"k": k, "set": name, "reals": reals, "kid_mean": est, "replicates": {"kid": reps}}
    if gate:
        r["gate"] = gate
    return r


def test_gan_claim_by_intervals():
    rows = [_row(5, "singan/gss0", "held-out", 0.1, 0.01), _row(5, "fastgan/n5", "held-out", 0.5, 0.01, fair.TRAINED),
            _row(5, "singan/gss0", "training", 0.9, 0.01), _row(5, "fastgan/n5", "training", 0.5, 0.01, fair.TRAINED)]
    v, iv, which = fair.gan_claim(rows)
    assert v == HOLDS and iv.low > 0 and which.startswith("held-out")  # held-out reals first
    v, _, which = fair.gan_claim(rows[2:])
    assert v == DOES_NOT_HOLD and which.startswith("training")
    rows[1]["gate"] = fair.DID_NOT_TRAIN
    v, iv, why = fair.gan_claim(rows)
    assert v == NOT_TESTABLE and iv is None and "baseline did not train" in why


def test_mask_distribution_counts_empty_and_near_empty():
    d = distribution([0.0, 0.0, 0.5, 0.99, 1.0, 30.0, 50.0, 10.0], near_empty_percent=1.0)
    assert d["empty"] == 2 and d["empty_fraction"] == pytest.approx(2 / 8)
    assert d["near_empty_fraction"] == pytest.approx(4 / 8) and d["near_empty_percent"] == 1.0
