"""Fréchet Inception Distance (Heusel et al., NeurIPS 2017) between two Gaussians fitted to features.

    FID = ||mu_1 - mu_2||^2 + Tr(Sigma_1) + Tr(Sigma_2) - 2 Tr((Sigma_1 Sigma_2)^(1/2))

Only the trace of the matrix square root is needed, and two ways to get it are offered:

- `method='eigh'` (default): Tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i) with lambda_i the eigenvalues of the
  symmetric PSD matrix S1^(1/2) S2 S1^(1/2) (similar to S1 S2, so same spectrum). Two symmetric eigen-
  decompositions: no complex arithmetic, no imaginary parts, stable for singular covariances (fewer images than
  feature dimensions), and several times faster than a general square root for D = 2048. Rounding can leave
  tiny negative eigenvalues; they are clipped to zero and the most negative one is reported.
- `method='sqrtm'`: SciPy's Schur-method `sqrtm` of S1 S2, exactly the computation of pytorch-fid and NVIDIA's
  StyleGAN code, with pytorch-fid's fallbacks: if the root is not finite, eps is added to both diagonals
  (reported); small imaginary parts are dropped when the diagonal's are below 1e-3 (the largest reported),
  larger ones raise `FrechetDistanceError`.

Both agree with each other to float64 rounding on well-conditioned statistics (tested to 1e-6).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


class FrechetDistanceError(FloatingPointError):
    """The matrix square root came out with a large imaginary part: the statistics are unusable."""


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> tuple[float, dict]:
    w1, v1 = np.linalg.eigh(sigma1)
    sqrt_sigma1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T  # [D, D] symmetric PSD
    inner = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    most_negative = float(min(eigenvalues.min(), 0.0))
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum()), {"min_eigenvalue_clipped": most_negative}


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> tuple[float, dict]:
    with warnings.catch_warnings(record=True) as caught:  # reported, not printed (keeps --json output clean)
        warnings.simplefilter("always")
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        eps_offset = not np.isfinite(covmean).all()
        if eps_offset:
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    max_imaginary = 0.0
    if np.iscomplexobj(covmean):
        max_imaginary = float(np.max(np.abs(covmean.imag)))
        diagonal_imaginary = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if diagonal_imaginary > 1e-3:
            raise FrechetDistanceError(
                f"FID: matrix square root has imaginary components up to {max_imaginary:.3g} (diagonal "
                f"{diagonal_imaginary:.3g}); the covariance estimates are too degenerate: use more images"
            )
        covmean = covmean.real
    report = {"eps_offset": eps_offset, "max_imaginary": max_imaginary,
              "sqrtm_warnings": sorted({str(w.message) for w in caught})}  # fmt: skip
    return float(np.trace(covmean)), report


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigh", eps: float = 1e-6, return_report=False):
    """FID between N(mu1, sigma1) and N(mu2, sigma2) (means [D], covariances [D, D]; computed in float64).

    method: 'eigh' or 'sqrtm' (see the module docstring). Returns the distance, or (distance, report) with
    return_report=True; the report says which method ran and what numerical repairs it needed.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(
            f"mismatched statistics: means {mu1.shape} and {mu2.shape}, covariances {sigma1.shape} and {sigma2.shape}"
        )
    if method == "eigh":
        trace_root, report = _trace_sqrt_product_eigh(sigma1, sigma2)
    elif method == "sqrtm":
        trace_root, report = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
    diff = mu1 - mu2
    distance = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)
    return (distance, {"method": method, **report}) if return_report else distance


def fid_from_stats(stats_a, stats_b, **kwargs):
    """FID between two `FeatureStats` (order does not matter); keyword arguments as `frechet_distance`."""
    return frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov, **kwargs)
