"""Training-time metrics built on this package: `mem1k` (memorisation) and `msssim1k` (diversity).

Each takes a generator and the training data, like the FID metrics, and returns a dict of named results. They
need no network weights, so they run offline. Generation uses seeds 0..N-1 with constant noise, so values are
comparable across snapshots.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan_core.evaluation.diversity import diversity_report
from medgan_core.evaluation.images import load_images
from medgan_core.evaluation.memorization import find_memorized


def _generate(G: torch.nn.Module, num: int, device) -> np.ndarray:
    from medgan_core.generate import generate_images

    return generate_images(G, list(range(num)), noise_mode="const", device=device)


def _split_train_holdout(reals: np.ndarray, holdout_fraction: float = 0.1, seed: int = 0):
    """A seeded split of the real images into a reference set and a held-out set (at least one image each)."""
    order = np.random.default_rng(seed).permutation(len(reals))
    num_holdout = min(max(1, int(round(len(reals) * holdout_fraction))), len(reals) - 1)
    return reals[np.sort(order[num_holdout:])], reals[np.sort(order[:num_holdout])]


def mem1k(
    G: torch.nn.Module,
    data,
    device="cpu",
    rank: int = 0,
    world_size: int = 1,
    num_gen: int = 1000,
    max_reals: int = 10000,
    fpr: float = 0.01,
    **_unused,
) -> dict:
    """Fraction of 1k generated images flagged as copies of the training set (held-out: 10% of reals, seeded).

    Computed on rank 0 only (other ranks return NaN, as the metric runner expects).
    """
    if rank != 0:
        return dict.fromkeys(("mem1k", "mem1k_threshold", "mem1k_holdout_flagged"), float("nan"))
    reals, _ = load_images(data, max_images=max_reals)
    train, holdout = _split_train_holdout(reals)
    result = find_memorized(_generate(G, num_gen, device), train, holdout, fpr=fpr, device=device)
    return {
        "mem1k": result.flagged_fraction,
        "mem1k_threshold": result.threshold,
        "mem1k_holdout_flagged": result.holdout_flagged_fraction,
    }


def msssim1k(
    G: torch.nn.Module,
    data,
    device="cpu",
    rank: int = 0,
    world_size: int = 1,
    num_gen: int = 1000,
    num_pairs: int = 1000,
    max_reals: int = 10000,
    **_unused,
) -> dict:
    """Mean pairwise MS-SSIM of 1k generated images and of the real images (lower = more diverse).

    Computed on rank 0 only (other ranks return NaN, as the metric runner expects).
    """
    if rank != 0:
        return dict.fromkeys(("msssim1k", "msssim1k_real"), float("nan"))
    reals, _ = load_images(data, max_images=max_reals)
    result = diversity_report(_generate(G, num_gen, device), reals, num_pairs=num_pairs, device=device)
    return {"msssim1k": result.generated_mean, "msssim1k_real": result.real_mean}
