"""Diversity: mean pairwise MS-SSIM of a set of images (lower = more diverse).

MS-SSIM comes from torchmetrics (`multiscale_structural_similarity_index_measure`), not hand-written code.
The standard five scales need images of at least ~176 pixels with an 11-pixel Gaussian window; smaller images
use fewer scales: the largest number s <= 5 for which the coarsest scale (side / 2^(s-1)) still holds the window
and torchmetrics' size checks pass. The first s of Wang et al.'s weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
are kept and rescaled to sum to 1. Mode collapse shows as generated MS-SSIM well above the real images' value.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik (2003)


@dataclasses.dataclass
class DiversityResult:
    """Mean pairwise MS-SSIM of generated and real images, over `num_pairs` seeded random pairs each."""

    generated_mean: float
    generated_std: float
    real_mean: float | None
    real_std: float | None
    num_pairs: int
    scales: int
    kernel_size: int

    def summary(self) -> dict:
        return dataclasses.asdict(self)


def msssim_settings(side: int, kernel_size: int = 11) -> tuple[int, tuple[float, ...]]:
    """Number of scales and their weights for square images of `side` pixels (see the module docstring)."""
    for scales in range(5, 0, -1):
        div = max(1, scales - 1) ** 2  # torchmetrics requires side // (scales - 1)^2 > kernel_size - 1
        if side // 2 ** (scales - 1) >= kernel_size and side // div > kernel_size - 1 and side >= 2**scales:
            weights = np.array(MSSSIM_WEIGHTS[:scales])
            return scales, tuple(float(w) for w in weights / weights.sum())
    raise ValueError(f"images of {side} pixels are too small for MS-SSIM with a {kernel_size}-pixel window")


def msssim(a: torch.Tensor, b: torch.Tensor, kernel_size: int = 11) -> torch.Tensor:
    """MS-SSIM of each pair (a[i], b[i]); a, b: float [N, C, H, W] in 0..255. Returns [N]."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    _, weights = msssim_settings(min(a.shape[-2:]), kernel_size)
    return multiscale_structural_similarity_index_measure(
        a, b, data_range=255.0, kernel_size=kernel_size, betas=weights, reduction="none", normalize="relu"
    )


def random_pairs(count: int, num_pairs: int, seed: int = 0) -> np.ndarray:
    """`num_pairs` seeded random pairs (i, j), i != j, of indices below `count`: int [num_pairs, 2]."""
    if count < 2:
        raise ValueError("need at least two images to form pairs")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, count, size=num_pairs)
    second = (first + rng.integers(1, count, size=num_pairs)) % count  # never equal to first
    return np.stack([first, second], axis=1)


def mean_pairwise_msssim(
    images: np.ndarray,
    num_pairs: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    kernel_size: int = 11,
) -> tuple[float, float]:
    """Mean and SD of MS-SSIM over seeded random pairs of distinct images; images: uint8 [N, H, W, C]."""
    pairs = random_pairs(len(images), num_pairs, seed)
    values = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        a = torch.from_numpy(images[chunk[:, 0]]).permute(0, 3, 1, 2).to(device, torch.float32)
        b = torch.from_numpy(images[chunk[:, 1]]).permute(0, 3, 1, 2).to(device, torch.float32)
        values.append(msssim(a, b, kernel_size).cpu())
    all_values = torch.cat(values).double().numpy()
    return float(all_values.mean()), float(all_values.std(ddof=1)) if len(all_values) > 1 else 0.0


def diversity_report(
    generated: np.ndarray,
    real: np.ndarray | None = None,
    num_pairs: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    kernel_size: int = 11,
) -> DiversityResult:
    """MS-SSIM diversity of generated images, beside that of real images when given."""
    scales, _ = msssim_settings(min(generated.shape[1:3]), kernel_size)
    gen_mean, gen_std = mean_pairwise_msssim(generated, num_pairs, seed, device=device, kernel_size=kernel_size)
    real_mean = real_std = None
    if real is not None:
        real_mean, real_std = mean_pairwise_msssim(real, num_pairs, seed, device=device, kernel_size=kernel_size)
    return DiversityResult(gen_mean, gen_std, real_mean, real_std, num_pairs, scales, kernel_size)
