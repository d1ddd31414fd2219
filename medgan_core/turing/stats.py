"""Statistics of the visual Turing tests: permutation tests, Pearson correlations, t-based confidence intervals.

The paper tests differences with permutation tests at alpha = 0.05 for FIDs and alpha = 0.10 for the Turing
tests. `permutation_test_means` enumerates every arrangement when there are few (sign flips for paired data,
group relabellings for unpaired data) and falls back to a seeded Monte Carlo sample otherwise. Its p-values use
the same conventions as `scipy.stats.permutation_test`, so the two agree: the two-sided p-value is twice the
smaller one-sided p-value (capped at 1), and a Monte Carlo p-value counts the observed arrangement,
(hits + 1) / (resamples + 1).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

ALPHA_FID = 0.05  # the paper's significance level for FID comparisons
ALPHA_TURING = 0.10  # the paper's significance level for the Turing tests (Table 1's correlation at 90%)
MAX_EXACT_ARRANGEMENTS = 100_000  # enumerate the null distribution exactly up to this many arrangements
_ALTERNATIVES = ("two-sided", "greater", "less")
_BATCH = 8192  # Monte Carlo resamples per vectorised batch


class _Result:
    """A result that reads as a plain dict (JSON output, tables)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PermutationResult(_Result):
    """A permutation test for a difference in means: statistic = mean(x) - mean(y) (or mean(x - y) if paired)."""

    statistic: float
    p_value: float
    alternative: str
    paired: bool
    exact: bool
    n_arrangements: int  # arrangements enumerated (exact) or resamples drawn (Monte Carlo)
    alpha: float
    significant: bool


@dataclass(frozen=True)
class CorrelationResult(_Result):
    """Pearson's r with its two-sided p-value and a Fisher-z confidence interval at `confidence`."""

    r: float
    p_value: float
    n: int
    confidence: float
    ci_low: float
    ci_high: float
    alpha: float
    significant: bool


@dataclass(frozen=True)
class MeanCI(_Result):
    """Mean, sample SD (ddof=1) and a t-based confidence interval of the mean: mean +- t(n-1) * SD / sqrt(n)."""

    mean: float
    sd: float
    n: int
    confidence: float
    ci_low: float
    ci_high: float
    method: str = "t-based (Student t with n-1 degrees of freedom)"


def mean_confidence_interval(values, confidence: float = 0.95) -> MeanCI:
    """Mean, sample SD and the t-based `confidence` interval of the mean of 1D `values` (NaNs dropped)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, 0, confidence, math.nan, math.nan)
    mean = float(data.mean())
    if n < 2:
        return MeanCI(mean, math.nan, n, confidence, math.nan, math.nan)
    sd = float(data.std(ddof=1))
    half_width = float(scipy.stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, sd, n, confidence, mean - half_width, mean + half_width)


def pearson(x, y, confidence: float = 1 - ALPHA_TURING, alpha: float = ALPHA_TURING) -> CorrelationResult:
    """Pearson's r between paired 1D samples `x` and `y` (length n >= 3), with scipy's two-sided p-value."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pearson needs samples of equal length, got {x.size} and {y.size}")
    if x.size < 3:
        raise ValueError(f"pearson needs at least 3 pairs, got {x.size}")
    result = scipy.stats.pearsonr(x, y)
    r, p = float(result.statistic), float(result.pvalue)
    if x.size > 3 and abs(r) < 1:
        interval = result.confidence_interval(confidence_level=confidence)
        low, high = float(interval.low), float(interval.high)
    else:  # Fisher's z needs n > 3 and |r| < 1
        low = high = math.nan
    return CorrelationResult(r, p, int(x.size), confidence, low, high, alpha, bool(p < alpha))


def _p_values(null: np.ndarray, observed: float, exact: bool) -> dict[str, float]:
    """One- and two-sided p-values of `observed` against the null distribution `null` [n_arrangements]."""
    tolerance = abs(observed) * np.finfo(np.float64).eps * 100  # count float-equal arrangements as ties
    n_less = int(np.count_nonzero(null <= observed + tolerance))
    n_greater = int(np.count_nonzero(null >= observed - tolerance))
    if exact:
        less, greater = n_less / null.size, n_greater / null.size
    else:  # the observed arrangement is one of the possible ones (Phipson & Smyth 2010)
        less, greater = (n_less + 1) / (null.size + 1), (n_greater + 1) / (null.size + 1)
    return {"less": less, "greater": greater, "two-sided": min(1.0, 2 * min(less, greater))}


def _paired_null(diff: np.ndarray, exact: bool, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of sign-flipped differences: all 2**n sign patterns, or `n_resamples` random ones."""
    n = diff.size
    if exact:
        codes = np.arange(2**n, dtype=np.int64)[:, None]  # [2**n, 1]
        signs = 1 - 2 * ((codes >> np.arange(n)) & 1)  # [2**n, n] in {+1, -1}
        return (signs * diff).mean(axis=1)
    null = []
    for start in range(0, n_resamples, _BATCH):
        batch = min(_BATCH, n_resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(batch, n))  # [batch, n]
        null.append((signs * diff).mean(axis=1))
    return np.concatenate(null)


def _unpaired_null(
    x: np.ndarray, y: np.ndarray, exact: bool, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """mean(group 1) - mean(group 2) over relabellings of the pooled sample: all C(n+m, n), or random ones."""
    pooled = np.concatenate([x, y])
    n, total = x.size, pooled.sum()
    m = y.size
    if exact:
        count = math.comb(pooled.size, n)
        flat = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(pooled.size), n)),
            dtype=np.int64,
            count=count * n,
        )
        sums = pooled[flat.reshape(count, n)].sum(axis=1)  # [count]
        return sums / n - (total - sums) / m
    null = []
    for start in range(0, n_resamples, _BATCH):
        batch = min(_BATCH, n_resamples - start)
        shuffled = rng.permuted(np.broadcast_to(pooled, (batch, pooled.size)), axis=1)  # [batch, n + m]
        sums = shuffled[:, :n].sum(axis=1)
        null.append(sums / n - (total - sums) / m)
    return np.concatenate(null)


def permutation_test_means(
    x,
    y,
    paired: bool,
    alternative: str = "two-sided",
    n_resamples: int = 100_000,
    max_exact: int = MAX_EXACT_ARRANGEMENTS,
    seed: int = 0,
    alpha: float = ALPHA_TURING,
) -> PermutationResult:
    """Permutation test for a difference in means between samples `x` [n] and `y` [m].

    paired: x and y are matched (n == m): statistic mean(x - y), null by flipping the sign of each difference.
        Otherwise: statistic mean(x) - mean(y), null by reassigning the pooled values to groups of n and m.
    alternative: "two-sided", "greater" (mean of x larger) or "less".
    Exact enumeration when the number of arrangements (2**n paired, C(n+m, n) unpaired) is at most `max_exact`;
    otherwise `n_resamples` seeded Monte Carlo arrangements (the same seed gives the same p-value).
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("permutation test needs non-empty samples of finite values")
    rng = np.random.default_rng(seed)
    if paired:
        if x.size != y.size:
            raise ValueError(f"a paired test needs samples of equal length, got {x.size} and {y.size}")
        diff = x - y
        observed = float(diff.mean())
        arrangements = 2**x.size
        exact = arrangements <= max_exact
        null = _paired_null(diff, exact, n_resamples, rng)
    else:
        observed = float(x.mean() - y.mean())
        arrangements = math.comb(x.size + y.size, x.size)
        exact = arrangements <= max_exact
        null = _unpaired_null(x, y, exact, n_resamples, rng)
    p_value = _p_values(null, observed, exact)[alternative]
    return PermutationResult(
        statistic=observed,
        p_value=float(p_value),
        alternative=alternative,
        paired=paired,
        exact=exact,
        n_arrangements=int(null.size),
        alpha=alpha,
        significant=bool(p_value < alpha),
    )
