"""Kernel Inception Distance (Bińkowski et al., ICLR 2018): unbiased MMD^2 with a cubic polynomial kernel.

    k(x, y) = (x . y / D + 1)^3          (degree 3, gamma 1/D, coefficient 1; D = feature dimension)

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)

averaged over `num_subsets` random subsets of m = min(n_real, n_gen, max_subset_size) items from each set,
drawn without replacement (NVIDIA's kid50k_full: 100 subsets of 1000). Subsets come from a seeded NumPy
RandomState, so the value is reproducible (NVIDIA's code uses the unseeded global generator).
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x y^T / D + 1)^3 for x [m, D], y [k, D] -> [m, k], float64."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(
    real_features: np.ndarray,
    gen_features: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID between real [n_r, D] and generated [n_g, D] features (mean unbiased MMD^2 over subsets)."""
    real = np.asarray(real_features, dtype=np.float64)
    gen = np.asarray(gen_features, dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"KID needs [N, D] feature arrays of equal D, got {real.shape} and {gen.shape}")
    m = min(len(real), len(gen), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors in each set, got {len(real)} and {len(gen)}")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(len(gen), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        k_within = polynomial_kernel(x, x) + polynomial_kernel(y, y)
        k_between = polynomial_kernel(x, y)
        total += (k_within.sum() - np.trace(k_within)) / (m - 1) - k_between.sum() * 2 / m
    return float(total / num_subsets / m)
