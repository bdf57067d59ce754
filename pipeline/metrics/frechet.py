"""The Fréchet distance between two Gaussians, shared by FID and SIFID.

    d² = ‖μ1 − μ2‖² + tr(Σ1) + tr(Σ2) − 2 tr((Σ1 Σ2)^½)

Why our own (design notes, "decided: own the Fréchet distance"; anchors section 3,
pitfall 1): pytorch-fid 0.3.0, clean-fid and the SinGAN / SinGAN-Seg SIFID scripts call
`scipy.linalg.sqrtm(..., disp=False)`, whose `disp` argument SciPy 1.18 removed, and
`sqrtm` produced spurious imaginary parts on SciPy 1.11.2. We never need the matrix
square root itself, only the trace of it: tr((Σ1 Σ2)^½) = Σ_i sqrt(λ_i(Σ1 Σ2)). Like
torch-fidelity (`metric_fid.py`, eigenvalues instead of sqrtm), but in the symmetric form
Σ1 Σ2 ~ Σ1^½ Σ2 Σ1^½ (similar matrices, same eigenvalues), whose eigenvalues `eigvalsh`
returns as real numbers ≥ 0 up to rounding. Everything is float64 (anchors section 3,
pitfall 4).

Near-singular covariances (fewer samples than dimensions: a 2048-d FID over 50 images,
anchors section 3 pitfall 2) need no regularisation in this form: a zero eigenvalue has a
zero square root, where `sqrtm` fails and pytorch-fid falls back to adding 1e-6 to the
diagonals. Rounding makes tiny negative eigenvalues, which are clipped to 0; an
eigenvalue below −NEG_TOL·max|λ| means the matrix is not a covariance and is an error.
`eps` (default 0) adds eps·I to both covariances, pytorch-fid's fallback, for users who
want that convention; results record it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from singanseg.errors import UserError

# Relative tolerance for negative eigenvalues of a covariance: rounding in float64 gives
# about 1e-13 relative; anything beyond 1e-6 is a genuinely indefinite matrix.
NEG_TOL = 1e-6
# Eigenvalues below this fraction of the largest are rounding noise around 0 (see above).
ZERO_TOL = 1e-12


class StatisticsError(UserError):
    """Statistics that cannot describe a Gaussian (NaN, wrong shapes, too few samples)."""


def _psd_check(w: np.ndarray, name: str) -> None:
    scale = max(float(np.abs(w).max()), 1e-300)
    if w.min() < -NEG_TOL * scale:
        raise StatisticsError(f"{name} is not positive semi-definite (eigenvalue {w.min():.3g}, largest {scale:.3g})")


def _psd_sqrt(sigma: np.ndarray, name: str) -> np.ndarray:
    key = (sigma.shape, hashlib.sha1(np.ascontiguousarray(sigma).tobytes()).hexdigest())
    if key in _ROOTS:  # one real set's covariance serves every synthetic set (a 2048-d eigh: seconds)
        return _ROOTS[key]
    w, v = np.linalg.eigh(sigma)
    _psd_check(w, name)
    root = (v * np.sqrt(_zeroed(w))) @ v.T
    if len(_ROOTS) >= 4:
        _ROOTS.pop(next(iter(_ROOTS)))
    _ROOTS[key] = root
    return root


_ROOTS: dict[tuple, np.ndarray] = {}  # the last square roots, by the covariance's bytes


def _zeroed(w: np.ndarray) -> np.ndarray:
    top = float(np.abs(w).max()) if w.size else 0.0
    return np.where(w < ZERO_TOL * top, 0.0, w)


def _check(mu: np.ndarray, sigma: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1:
        raise StatisticsError(f"mu{name}: expected a vector, got shape {mu.shape}")
    if sigma.shape != (mu.size, mu.size):
        raise StatisticsError(f"sigma{name}: expected shape {(mu.size, mu.size)} to match mu{name}, got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise StatisticsError(f"mu{name}/sigma{name}: statistics contain NaN or infinity")
    if not np.allclose(sigma, sigma.T, rtol=1e-5, atol=1e-8 * max(1.0, float(np.abs(sigma).max()))):
        raise StatisticsError(f"sigma{name}: covariance is not symmetric")
    return mu, (sigma + sigma.T) / 2


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 0.0) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, sigma1 = _check(mu1, sigma1, "1")
    mu2, sigma2 = _check(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise StatisticsError(f"mu1 has {mu1.size} dimensions but mu2 has {mu2.size}")
    if eps < 0:
        raise StatisticsError(f"eps: must be >= 0, got {eps}")
    if eps:
        offset = np.eye(mu1.size) * eps
        sigma1, sigma2 = sigma1 + offset, sigma2 + offset
    root1 = _psd_sqrt(sigma1, "sigma1")
    _psd_check(np.linalg.eigvalsh(sigma2), "sigma2")  # validates sigma2 the same way (its root is not needed)
    middle = root1 @ sigma2 @ root1
    lam = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(_zeroed(lam)).sum())
    diff = mu1 - mu2
    d2 = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    # d² >= 0 mathematically; rounding can give -1e-12 for identical statistics
    return max(d2, 0.0)


def gaussian_statistics(features: np.ndarray, where: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, as numpy.cov in pytorch-fid and SIFID) covariance of (N, D) samples."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise StatisticsError(f"{where}: expected (samples, dims), got shape {x.shape}")
    if x.shape[0] < 2:
        raise StatisticsError(f"{where}: need at least 2 samples for a covariance, got {x.shape[0]}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise StatisticsError(f"{where}: {bad} of {x.shape[0]} feature vectors contain NaN or infinity")
    return x.mean(axis=0), np.cov(x, rowvar=False)
