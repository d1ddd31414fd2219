"""Permutation tests against scipy.stats.permutation_test; Pearson and t intervals against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from medgan_core.turing.stats import mean_confidence_interval, pearson, permutation_test_means


def _scipy_paired(x, y, alternative, n_resamples, seed=0):
    return scipy.stats.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        alternative=alternative,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )


def _scipy_unpaired(x, y, alternative, n_resamples, seed=0):
    return scipy.stats.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
        permutation_type="independent",
        alternative=alternative,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paired_exact_matches_scipy(alternative, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 1.0, size=10)
    y = rng.normal(0.0, 1.0, size=10)
    ours = permutation_test_means(x, y, paired=True, alternative=alternative)
    ref = _scipy_paired(x, y, alternative, n_resamples=np.inf)
    assert ours.exact and ours.n_arrangements == 2**10
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_unpaired_exact_matches_scipy(alternative, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, size=7)
    y = rng.normal(0.0, 1.5, size=9)
    ours = permutation_test_means(x, y, paired=False, alternative=alternative)
    ref = _scipy_unpaired(x, y, alternative, n_resamples=np.inf)
    assert ours.exact and ours.n_arrangements == math.comb(16, 7)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


def _mc_tolerance(p: float, n: int) -> float:
    """5 binomial standard errors of each of two independent Monte Carlo estimates, plus the +1 correction."""
    return 5 * math.sqrt(2 * max(p * (1 - p), 1e-4) / n) + 2 / n


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_paired_monte_carlo_matches_scipy(alternative):
    rng = np.random.default_rng(10)
    x = rng.normal(0.25, 1.0, size=40)  # 2**40 arrangements: Monte Carlo
    y = rng.normal(0.0, 1.0, size=40)
    n = 20_000
    ours = permutation_test_means(x, y, paired=True, alternative=alternative, n_resamples=n, seed=3)
    ref = _scipy_paired(x, y, alternative, n_resamples=n, seed=7)
    assert not ours.exact and ours.n_arrangements == n
    assert 0.005 < ref.pvalue < 0.9  # a p-value where Monte Carlo error matters
    assert abs(ours.p_value - ref.pvalue) < _mc_tolerance(ref.pvalue, n)


@pytest.mark.parametrize("alternative", ["two-sided", "less"])
def test_unpaired_monte_carlo_matches_scipy(alternative):
    rng = np.random.default_rng(11)
    x = rng.normal(-0.3, 1.0, size=25)  # C(55, 25) arrangements: Monte Carlo
    y = rng.normal(0.0, 1.0, size=30)
    n = 20_000
    ours = permutation_test_means(x, y, paired=False, alternative=alternative, n_resamples=n, seed=3)
    ref = _scipy_unpaired(x, y, alternative, n_resamples=n, seed=7)
    assert not ours.exact
    assert 0.005 < ref.pvalue < 0.9
    assert abs(ours.p_value - ref.pvalue) < _mc_tolerance(ref.pvalue, n)


def test_monte_carlo_is_seeded():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=30), rng.normal(size=30)
    a = permutation_test_means(x, y, paired=True, n_resamples=5000, seed=9)
    b = permutation_test_means(x, y, paired=True, n_resamples=5000, seed=9)
    c = permutation_test_means(x, y, paired=True, n_resamples=5000, seed=10)
    assert a.p_value == b.p_value
    assert a.p_value != c.p_value


def test_exact_threshold_switches_method():
    x, y = np.arange(17.0), np.arange(17.0)[::-1]
    assert not permutation_test_means(x, y, paired=True, n_resamples=1000).exact  # 2**17 > 100k
    assert permutation_test_means(x[:16], y[:16], paired=True).exact  # 2**16 <= 100k


def test_paired_identical_samples_give_p_one():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert permutation_test_means(x, x, paired=True).p_value == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="equal length"):
        permutation_test_means([1, 2, 3], [1, 2], paired=True)
    with pytest.raises(ValueError, match="alternative"):
        permutation_test_means([1, 2], [1, 2], paired=True, alternative="bigger")
    with pytest.raises(ValueError, match="finite"):
        permutation_test_means([1, np.nan], [1, 2], paired=False)


def test_pearson_matches_closed_form():
    rng = np.random.default_rng(13)
    x = rng.normal(size=12)
    y = 0.6 * x + rng.normal(size=12)
    result = pearson(x, y, confidence=0.9, alpha=0.1)
    r = np.corrcoef(x, y)[0, 1]
    t = r * math.sqrt((12 - 2) / (1 - r**2))
    p = 2 * scipy.stats.t.sf(abs(t), df=10)
    z, se = math.atanh(r), 1 / math.sqrt(12 - 3)
    z_crit = scipy.stats.norm.ppf(0.95)
    assert result.r == pytest.approx(r, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.ci_low == pytest.approx(math.tanh(z - z_crit * se), rel=1e-9)
    assert result.ci_high == pytest.approx(math.tanh(z + z_crit * se), rel=1e-9)
    assert result.significant == (p < 0.1)


def test_mean_confidence_interval_matches_closed_form():
    values = np.array([3, 4, 5, 2, 4, 5, 5, 3, 1, 4], dtype=float)
    ci = mean_confidence_interval(values, confidence=0.95)
    half = 2.2621571627409915 * values.std(ddof=1) / math.sqrt(10)  # t(0.975, 9) from tables: 2.262
    assert ci.mean == pytest.approx(3.6)
    assert ci.sd == pytest.approx(values.std(ddof=1))
    assert ci.ci_low == pytest.approx(3.6 - half, rel=1e-9)
    assert ci.ci_high == pytest.approx(3.6 + half, rel=1e-9)
    assert "t-based" in ci.method
