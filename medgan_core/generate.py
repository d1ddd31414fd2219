"""Seeds -> images with a StyleGAN2 generator, exactly as NVIDIA's `gen_images.py` draws them.

`seed_to_z(seed, z_dim)` is `np.random.RandomState(seed).randn(1, z_dim)`, so a seed names the same latent here
and in NVIDIA's scripts; images map [-1, 1] to 0..255 by NVIDIA's x * 127.5 + 128, clamped and rounded down
(`medgan_core.utils.images`, which also holds `image_grid`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from medgan_core.utils.heap import heap_reuse
from medgan_core.utils.images import image_grid as image_grid  # re-exported: notebooks and the CLI use it here
from medgan_core.utils.images import images_to_uint8 as to_uint8  # NVIDIA's mapping, [N, C, H, W] -> [N, H, W, C]

NOISE_MODES = ("const", "random", "none")


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent NVIDIA's scripts use for `seed`: float64 array [1, z_dim] of standard normal draws."""
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed {seed} is outside 0 .. 2**32 - 1")
    return np.random.RandomState(int(seed)).randn(1, z_dim)


def class_labels(c_dim: int, class_idx: int | None, count: int) -> torch.Tensor:
    """One-hot labels [count, c_dim] for `class_idx` (shape [count, 0] for an unconditional network)."""
    labels = torch.zeros([count, c_dim])
    if c_dim == 0:
        return labels
    if class_idx is None:
        raise ValueError(f"the network is conditional ({c_dim} classes): give a class index 0 .. {c_dim - 1}")
    if not 0 <= class_idx < c_dim:
        raise ValueError(f"class index {class_idx} is out of range for a network with {c_dim} classes")
    labels[:, class_idx] = 1
    return labels


# Memory for G's largest activation ([N, C, H, W] of the last block) per call, and the most images per call.
BATCH_BUDGET = {"cpu": (256 * 2**20, 32), "cuda": (2 * 2**30, 64)}


def generator_batch_size(G: torch.nn.Module, device: str | torch.device = "cpu") -> int:
    """Images per G call on `device`: the most (up to 32 on a CPU, 64 on a GPU) whose last-block activation
    [N, C, res, res] fits 256 MiB (CPU) or 2 GiB (GPU). The CPU inference path costs the same per image from a
    few images on, so the budget only bounds memory (several such buffers are alive at once)."""
    budget, most = BATCH_BUDGET["cuda" if torch.device(device).type == "cuda" else "cpu"]
    res = int(getattr(G, "img_resolution", 0) or 0)
    if res < 1:  # not a StyleGAN generator: nothing to size by
        return most
    modules = G.modules() if isinstance(G, torch.nn.Module) else []
    last_block = [m for m in modules if getattr(m, "resolution", None) == res and hasattr(m, "out_channels")]
    channels = max((int(m.out_channels) for m in last_block), default=64)
    return max(1, min(most, budget // (channels * res * res * 4)))


@torch.no_grad()
def generate_images(
    G: torch.nn.Module,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    class_idx: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Images for `seeds` as uint8 [N, H, W, C] (C = G.img_channels).

    The same seeds give the same images. With noise_mode='random' the noise of each batch is drawn from a
    generator seeded with the batch's first seed, so that too repeats (for the same batch size).
    For an unconditional network class_idx is ignored; for a conditional one it is required.
    G is moved to `device` (as NVIDIA's scripts do) and called as is (use an eval-mode G_ema), without autograd, so
    on the CPU it takes the fast inference path, with freed buffers kept for reuse (`utils.heap.heap_reuse`).
    batch_size None: `generator_batch_size(G, device)`.
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    if batch_size is None:
        batch_size = generator_batch_size(G, device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    seeds = [int(seed) for seed in seeds]
    G = G.to(device)
    on_cuda = torch.device(device).type == "cuda"
    outputs = []
    starts = range(0, len(seeds), batch_size)
    with heap_reuse(enabled=not on_cuda):  # large CPU buffers reused between calls, not page-faulted anew
        for start in tqdm(starts, desc="generate", unit="batch", disable=not progress):
            batch = seeds[start : start + batch_size]
            z = torch.from_numpy(np.concatenate([seed_to_z(seed, G.z_dim) for seed in batch])).to(device)
            c = class_labels(G.c_dim, class_idx, len(batch)).to(device)
            with torch.random.fork_rng(devices=[torch.device(device)] if on_cuda else []):
                torch.manual_seed(batch[0])
                images = G(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                           noise_mode=noise_mode)  # fmt: skip
            outputs.append(to_uint8(images))
    if not outputs:
        return np.zeros([0, G.img_resolution, G.img_resolution, G.img_channels], dtype=np.uint8)
    return np.concatenate(outputs)
