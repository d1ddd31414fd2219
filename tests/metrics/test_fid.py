"""Fréchet distance against a direct SciPy computation and closed forms."""

import numpy as np
import pytest
import scipy.linalg

from medgan_core.metrics.fid import fid_from_stats, frechet_distance
from medgan_core.metrics.statistics import FeatureStats


def _random_spd(rng, dim, rank=None):
    factor = rng.normal(size=(dim, rank or 2 * dim))
    return factor @ factor.T / factor.shape[1]


def _scipy_fid(mu1, s1, mu2, s2):
    """Textbook formula, float64, SciPy's sqrtm, no fallbacks."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(root).real)


def _eig_fid(mu1, s1, mu2, s2):
    """Independent route: Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), all symmetric PSD eigenproblems."""
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
@pytest.mark.parametrize("dim", [8, 64, 128])
def test_matches_scipy_on_random_gaussian_statistics(dim, method):
    rng = np.random.default_rng(dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = _random_spd(rng, dim), _random_spd(rng, dim)
    value = frechet_distance(mu1, s1, mu2, s2, method=method)
    assert value == pytest.approx(_scipy_fid(mu1, s1, mu2, s2), abs=1e-6)


def test_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    dim = 100
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    v1, v2 = rng.uniform(0.1, 3, dim), rng.uniform(0.1, 3, dim)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    for method in ("eigh", "sqrtm"):
        assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2), method=method) == pytest.approx(expected, abs=1e-6)


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(2)
    mu, sigma = rng.normal(size=32), _random_spd(rng, 32)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_near_singular_covariances_are_handled_and_reported():
    """Fewer samples than dimensions (as with few images): rank-deficient covariances."""
    rng = np.random.default_rng(3)
    dim = 128
    s1, s2 = _random_spd(rng, dim, rank=20), _random_spd(rng, dim, rank=30)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    value, report = frechet_distance(mu1, s1, mu2, s2, return_report=True)
    assert value == pytest.approx(_eig_fid(mu1, s1, mu2, s2), rel=1e-9)
    assert report["method"] == "eigh" and -1e-9 < report["min_eigenvalue_clipped"] <= 0
    value_sqrtm, report = frechet_distance(mu1, s1, mu2, s2, method="sqrtm", return_report=True)
    assert np.isfinite(value_sqrtm) and value_sqrtm == pytest.approx(value, rel=1e-6)
    assert report["max_imaginary"] < 1e-3


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="newton")


def test_fid_from_stats_uses_unbiased_covariance():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(500, 16)), rng.normal(1.0, 2.0, size=(400, 16))
    stats_a, stats_b = FeatureStats(), FeatureStats()
    stats_a.append(a)
    stats_b.append(b)
    expected = _scipy_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_stats(stats_a, stats_b) == pytest.approx(expected, abs=1e-6)
