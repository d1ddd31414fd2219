"""Feature extraction loops: images from a folder/zip or from a generator -> detector -> FeatureStats.

Work is split across ranks as NVIDIA's metrics do, but with a fixed global order: at step s the global batch is
items [s * B * W, (s + 1) * B * W) (B = per-rank batch, W = world size); rank r takes the r-th slice of B, and the
features of all ranks are `all_gather`ed in rank order. Every rank thus holds identical statistics, built from
the same items in the same order as a single process with batch B * W.

Generated image i comes from z_i = RandomState(i).randn(z_dim) (the convention of `medgan generate --seeds`, so
image i equals seed i's PNG), with `noise_mode='const'` and, for a conditional G, the label of a real image picked
by the same RandomState; pixels are mapped NVIDIA's way (`utils.images.float_to_uint8`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from medgan_core.data.images import ImageSource
from medgan_core.generate import generator_batch_size
from medgan_core.metrics.statistics import FeatureStats
from medgan_core.utils.images import float_to_uint8


def _rank_slice(step: int, num_items: int, batch_size: int, rank: int, world_size: int) -> range:
    start = step * batch_size * world_size + rank * batch_size
    return range(min(start, num_items), min(start + batch_size, num_items))


def _gather_rows(features: torch.Tensor, batch_size: int, world_size: int) -> torch.Tensor:
    """All ranks' feature rows [n_r, D] concatenated in rank order (n_r <= batch_size may differ per rank)."""
    if world_size == 1:
        return features
    padded = features.new_zeros([batch_size, features.shape[1]])
    padded[: len(features)] = features
    count = torch.tensor([len(features)], device=features.device)
    all_padded = [torch.empty_like(padded) for _ in range(world_size)]
    all_counts = [torch.empty_like(count) for _ in range(world_size)]
    torch.distributed.all_gather(all_padded, padded)
    torch.distributed.all_gather(all_counts, count)
    return torch.cat([rows[: int(n)] for rows, n in zip(all_padded, all_counts)])


class GeneratedImages:
    """G's images 0 .. num_gen - 1 as an image source: `len()` and `batch(indices)` (see the module docstring)."""

    def __init__(self, G, num_gen: int, device="cpu", labels: np.ndarray | None = None) -> None:
        self.G, self.num_gen, self.device, self.labels = G, num_gen, device, labels

    def __len__(self) -> int:
        return self.num_gen

    def batch(self, indices: range) -> torch.Tensor:
        return generated_images(self.G, indices, self.device, self.labels)


def compute_source_stats(
    source: ImageSource | GeneratedImages,
    detector,
    max_items: int | None = None,
    capture_mean_cov: bool = True,
    capture_all: bool = False,
    batch_size: int = 64,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = False,
    device="cpu",
) -> FeatureStats:
    """Feature statistics of the first `max_items` images of `source` (all when None), in sorted order.

    source: real images (`ImageSource`) or a generator's (`GeneratedImages`): anything with `len()` and
    `batch(indices) -> uint8 [N, C, H, W]`.
    """
    num_items = len(source) if max_items is None else min(len(source), max_items)
    stats = FeatureStats(capture_mean_cov, capture_all, max_items=num_items)
    num_steps = math.ceil(num_items / (batch_size * world_size))
    desc = "generated images" if isinstance(source, GeneratedImages) else "real images"
    bar = tqdm(total=num_items, desc=desc, unit="img", disable=not (progress and rank == 0))
    feature_dim = getattr(detector, "feature_dim", 2048)
    for step in range(num_steps):
        indices = _rank_slice(step, num_items, batch_size, rank, world_size)
        if len(indices):
            features = detector(source.batch(indices)).to(device, torch.float32)
        else:
            features = torch.zeros([0, feature_dim], device=device)
        features = _gather_rows(features, batch_size, world_size)
        stats.append(features)
        bar.update(len(features))
    bar.close()
    return stats


def generated_images(G, indices: range, device, labels: np.ndarray | None = None) -> torch.Tensor:
    """uint8 [N, C, H, W] images number `indices` of G (see the module docstring for the seeding)."""
    z_dim, c_dim = int(G.z_dim), int(getattr(G, "c_dim", 0) or 0)
    z = np.zeros([len(indices), z_dim], dtype=np.float32)
    c = np.zeros([len(indices), c_dim], dtype=np.float32)
    for row, index in enumerate(indices):
        rng = np.random.RandomState(index)
        z[row] = rng.randn(z_dim)
        if c_dim:
            if labels is None or len(labels) == 0:
                raise ValueError("a conditional generator needs the real dataset's labels (dataset.json)")
            label = labels[rng.randint(len(labels))]  # a class index, or a float label vector (dataset.json)
            if np.ndim(label) == 0:
                c[row, label] = 1
            else:
                c[row] = label
    step = generator_batch_size(G, device)  # G's own batch size for the device (the detector's may be larger)
    with torch.inference_mode():
        z_t = torch.from_numpy(z).to(device)
        c_t = torch.from_numpy(c).to(device)
        parts = [G(z_t[i : i + step], c_t[i : i + step], noise_mode="const") for i in range(0, len(z), step)]
        return torch.cat([float_to_uint8(images) for images in parts])


def compute_generator_stats(
    G, detector, num_gen: int, labels: np.ndarray | None = None, device="cpu", **options
) -> FeatureStats:
    """Feature statistics of G's images 0 .. num_gen - 1; `options` as for `compute_source_stats`."""
    return compute_source_stats(GeneratedImages(G, num_gen, device, labels), detector, device=device, **options)
