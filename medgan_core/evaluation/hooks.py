"""Training-time metrics built on this package: `mem1k` (memorisation), `msssim1k` (diversity), `div128` (mode
collapse: spread and coverage of generated images against the reals) and `frd256` (Frechet Radiomics Distance,
the FRD extra).

Each takes a generator and the training data, like the FID metrics, and returns a dict of named results. They
need no network weights, so they run offline. Generation uses seeds 0..N-1 with constant noise, so values are
comparable across snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from pathlib import Path

import numpy as np
import torch

from medgan_core.evaluation.diversity import diversity_report
from medgan_core.evaluation.images import load_images
from medgan_core.evaluation.memorization import find_memorized
from medgan_core.utils.io import save_png


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


def _write_pngs(images: np.ndarray, folder: Path) -> Path:
    """uint8 [N, H, W, C] -> folder/000000.png ... (grayscale saved as [H, W])."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        save_png(image[..., 0] if image.shape[-1] == 1 else image, folder / f"{index:06d}.png")
    return folder


_REAL_FRD_FEATURES: dict[str, np.ndarray] = {}  # the last real set's radiomic features, by its pixels' hash


def frd256(
    G: torch.nn.Module,
    data,
    device="cpu",
    rank: int = 0,
    world_size: int = 1,
    num_gen: int = 256,
    max_reals: int = 1000,
    num_workers: int = 1,
    name: str = "frd256",
    **_unused,
) -> dict:
    """Frechet Radiomics Distance between 256 generated images (seeds 0..255) and the real images (up to 1000).

    `frd256` is frd-score v1's value, log(d_F^2) of its normalised radiomic features (lower = closer);
    `frd256_distance` is d_F^2 itself; `frd256_varying` is log(d_F^2) over the features that vary over the real
    set, the anatomy without the constant features that dominate frd-score's value (see `frd.frd_breakdown`).
    Needs the FRD extra (see medgan_core.evaluation.frd). Rank 0 only.
    """
    if rank != 0:
        return dict.fromkeys((name, f"{name}_distance", f"{name}_varying"), float("nan"))
    from medgan_core.evaluation.frd import folder_features, frd_values

    reals, _ = load_images(data, max_images=max_reals)
    key = hashlib.sha256(reals.tobytes()).hexdigest() + str(reals.shape)  # the pixels decide, not the path
    with tempfile.TemporaryDirectory(prefix="medgan-frd-") as tmp:
        if key not in _REAL_FRD_FEATURES:  # the reals' features are the same at every snapshot of a run
            _REAL_FRD_FEATURES.clear()
            _REAL_FRD_FEATURES[key] = folder_features(_write_pngs(reals, Path(tmp) / "real"), num_workers)[1]
        generated_dir = _write_pngs(_generate(G, num_gen, device), Path(tmp) / "generated")
        with contextlib.redirect_stdout(io.StringIO()):  # frd-score prints its value; the trainer logs it once
            result = frd_values(None, generated_dir, num_workers, real_features=_REAL_FRD_FEATURES[key])
    return {
        name: result["frd"],
        f"{name}_distance": result["frechet_distance"],
        f"{name}_varying": result["frd_varying"],
    }


def frd64(G: torch.nn.Module, data, device="cpu", rank: int = 0, world_size: int = 1, num_gen: int = 64, **kwargs):
    """`frd256` with 64 generated images: a quarter of the cost, for many short runs (only compare FRD values
    computed with the same number of images)."""
    return frd256(G, data, device, rank, world_size, num_gen=num_gen, name="frd64", **kwargs)


def div128(
    G: torch.nn.Module,
    data,
    device="cpu",
    rank: int = 0,
    world_size: int = 1,
    num_gen: int = 128,
    max_reals: int = 1000,
    name: str = "div128",
    **_unused,
) -> dict:
    """Mode collapse of 128 generated images (seeds 0..127) against the real images (up to 1000), offline.

    `div128`: their spread on 8x8-pooled images as a fraction of the reals' (about 1 when as varied as the data,
    near 0 in collapse); `div128_coverage`: mode coverage (the distinct reals nearest to a generated image, over
    what as many random reals reach); `div128_msssim` and
    `div128_msssim_real`: mean pairwise MS-SSIM; `div128_collapse`: 1 when the spread says mode collapse
    (medgan_core.evaluation.collapse), else 0. Rank 0 only.
    """
    keys = (name, f"{name}_coverage", f"{name}_msssim", f"{name}_msssim_real", f"{name}_collapse")
    if rank != 0:
        return dict.fromkeys(keys, float("nan"))
    from medgan_core.evaluation.collapse import collapse_report

    reals, _ = load_images(data, max_images=max_reals)
    report = collapse_report(_generate(G, num_gen, device), reals)
    values = (report.spread_ratio, report.coverage, report.msssim, report.msssim_real, float(report.collapsed))
    return dict(zip(keys, values))
