"""KID against a direct NumPy implementation of the unbiased estimator and against torchmetrics' MMD."""

import numpy as np
import pytest
import torch

from medgan_core.metrics.kid import kernel_inception_distance


def _direct_unbiased_mmd2(x, y):
    """Pairwise loops over the kernel k(a, b) = (a.b / d + 1)^3 (mean over i != j within sets, all pairs across)."""
    d = x.shape[1]
    m = len(x)

    def k(a, b):
        return (np.dot(a, b) / d + 1.0) ** 3

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return within - 2 * across


def test_matches_direct_numpy_estimator_with_the_same_subsets():
    rng = np.random.default_rng(0)
    real, gen = rng.normal(size=(60, 16)), rng.normal(0.3, 1.2, size=(50, 16))
    num_subsets, subset_size, seed = 4, 20, 7
    subsets = np.random.RandomState(seed)  # the documented subset order: gen indices, then real indices
    expected = 0.0
    for _ in range(num_subsets):
        x = gen[subsets.choice(len(gen), subset_size, replace=False)]
        y = real[subsets.choice(len(real), subset_size, replace=False)]
        expected += _direct_unbiased_mmd2(x, y)
    expected /= num_subsets
    value = kernel_inception_distance(real, gen, num_subsets=num_subsets, max_subset_size=subset_size, seed=seed)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_single_full_subset_matches_torchmetrics_poly_mmd():
    from torchmetrics.image.kid import poly_mmd

    rng = np.random.default_rng(1)
    real, gen = rng.normal(size=(40, 32)), rng.normal(0.5, 1.0, size=(40, 32))
    ours = kernel_inception_distance(real, gen, num_subsets=1, max_subset_size=40)  # a permutation of all items
    theirs = float(poly_mmd(torch.from_numpy(real), torch.from_numpy(gen)))
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_same_distribution_is_near_zero_and_shift_is_positive():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    shifted = rng.normal(1.0, 1.0, size=(400, 8))
    same = kernel_inception_distance(a, b, num_subsets=10, max_subset_size=100)
    different = kernel_inception_distance(a, shifted, num_subsets=10, max_subset_size=100)
    assert abs(same) < 0.1 * different


def test_too_few_items_raise():
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 4)), np.zeros((5, 4)))
