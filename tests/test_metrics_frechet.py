"""Fréchet distance: analytic cases, pytorch-fid agreement, bad statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pipeline.metrics.frechet import StatisticsError, frechet_distance, gaussian_statistics


def _random_stats(rng, d, n):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    return x.mean(0), np.cov(x, rowvar=False)


def test_equal_covariances_give_squared_mean_distance():
    rng = np.random.default_rng(0)
    mu1, sigma = _random_stats(rng, 16, 200)
    mu2 = mu1 + rng.normal(size=16)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-9, abs=1e-9)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 4, 12), rng.uniform(0.1, 4, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_singular_covariances_stay_finite_and_exact():
    # rank-2 covariance in 8 dimensions: sqrtm needs pytorch-fid's eps fallback, we do not
    rng = np.random.default_rng(2)
    # shared orthonormal eigenbasis q: then tr sqrt(S1 S2) = sum sqrt(a_i b_i), a closed form
    q, _ = np.linalg.qr(rng.normal(size=(8, 2)))
    s1, s2 = q @ np.diag([4.0, 9.0]) @ q.T, q @ np.diag([1.0, 1.0]) @ q.T
    expected = (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(np.zeros(8), s1, np.zeros(8), s2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("d,n", [(8, 100), (64, 500), (64, 40)])
def test_agrees_with_pytorch_fid(d, n):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(d + n)
    mu1, s1 = _random_stats(rng, d, n)
    mu2, s2 = _random_stats(rng, d, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy 1.17 deprecates sqrtm's disp
        ref = float(calculate_frechet_distance(mu1, s1, mu2, s2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(3)
    mu, s = _random_stats(rng, 32, 100)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8 * np.trace(s)


def test_eps_is_pytorch_fids_diagonal_offset():
    rng = np.random.default_rng(4)
    mu1, s1 = _random_stats(rng, 6, 50)
    mu2, s2 = _random_stats(rng, 6, 50)
    e = 0.5
    assert frechet_distance(mu1, s1, mu2, s2, eps=e) == pytest.approx(
        frechet_distance(mu1, s1 + e * np.eye(6), mu2, s2 + e * np.eye(6)), rel=1e-12
    )


def test_bad_statistics_raise():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(StatisticsError, match="NaN"):
        frechet_distance(mu, s, np.array([0.0, np.nan, 0.0]), s)
    with pytest.raises(StatisticsError, match="dimensions"):
        frechet_distance(mu, s, np.zeros(4), np.eye(4))
    with pytest.raises(StatisticsError, match="shape"):
        frechet_distance(mu, np.eye(4), mu, s)
    with pytest.raises(StatisticsError, match="positive semi-definite"):
        frechet_distance(mu, np.diag([1.0, -1.0, 1.0]), mu, s)
    with pytest.raises(StatisticsError, match="symmetric"):
        frechet_distance(mu, np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]), mu, s)


def test_gaussian_statistics_checks_samples():
    with pytest.raises(StatisticsError, match="at least 2 samples"):
        gaussian_statistics(np.ones((1, 4)))
    x = np.ones((5, 4))
    x[2, 1] = np.nan
    with pytest.raises(StatisticsError, match="1 of 5 feature vectors"):
        gaussian_statistics(x)
    rng = np.random.default_rng(5)
    y = rng.normal(size=(30, 3))
    mu, s = gaussian_statistics(y)
    assert np.allclose(mu, y.mean(0)) and np.allclose(s, np.cov(y.T))
