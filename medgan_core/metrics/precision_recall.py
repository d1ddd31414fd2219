"""Improved precision and recall (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
Generative Models", NeurIPS 2019), computed as NVIDIA's `pr50k3_full` computes it.

Each set of feature vectors (VGG16 fc2+ReLU, vgg16.py) approximates its manifold by the union of balls around
its points, of radius the distance to the point's k-th nearest neighbour in the same set (k = `nhood_size` = 3;
the point itself is the 0-th, hence `kthvalue(k + 1)`):

    precision = fraction of generated features inside the real manifold,
    recall    = fraction of real features inside the generated manifold.

As in NVIDIA's metrics/precision_recall.py, features are stored as float16 and distances are float16 values
(Euclidean, `torch.cdist`) processed in row batches of 10,000 and column batches of 10,000; the k-th distances are
taken in float32 and stored as float16; a probe is inside when its distance to some manifold point is <= that
point's radius. Distances are computed in float32 from the float16 features and then rounded to float16, on every
device (PyTorch has no float16 `cdist` on the CPU), so CPU and GPU results agree. One process computes the
result; the other ranks of a multi-GPU run return NaN (NVIDIA spreads the distance columns over the GPUs; the
numbers are the same).
"""

from __future__ import annotations

import numpy as np
import torch


def pairwise_distances(rows: torch.Tensor, cols: torch.Tensor, col_batch_size: int = 10000) -> torch.Tensor:
    """Euclidean distances float16 [R, C] between float16 rows [R, D] and columns [C, D], in column batches."""
    batches = [
        torch.cdist(rows.float().unsqueeze(0), batch.float().unsqueeze(0))[0].to(torch.float16)
        for batch in cols.split(col_batch_size)
    ]
    return torch.cat(batches, dim=1)


def manifold_radii(manifold: torch.Tensor, nhood_size: int, row_batch_size: int, col_batch_size: int):
    """Distance of each point of `manifold` [M, D] to its `nhood_size`-th nearest neighbour, float16 [M]."""
    radii = []
    for batch in manifold.split(row_batch_size):
        dist = pairwise_distances(batch, manifold, col_batch_size)
        radii.append(dist.to(torch.float32).kthvalue(nhood_size + 1).values.to(torch.float16))
    return torch.cat(radii)


def coverage(manifold, radii, probes, row_batch_size: int, col_batch_size: int) -> float:
    """Fraction of `probes` [P, D] within the radius of at least one point of `manifold` [M, D]."""
    inside = []
    for batch in probes.split(row_batch_size):
        dist = pairwise_distances(batch, manifold, col_batch_size)
        inside.append((dist <= radii).any(dim=1))
    return float(torch.cat(inside).to(torch.float32).mean())


def precision_recall(
    real_features,
    gen_features,
    nhood_size: int = 3,
    row_batch_size: int = 10000,
    col_batch_size: int = 10000,
    device="cpu",
) -> tuple[float, float]:
    """(precision, recall) of generated [N_g, D] against real [N_r, D] features (arrays or tensors)."""
    real = torch.as_tensor(np.asarray(real_features)).to(device=device, dtype=torch.float16)
    gen = torch.as_tensor(np.asarray(gen_features)).to(device=device, dtype=torch.float16)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"precision/recall needs [N, D] features of equal D, got {real.shape} and {gen.shape}")
    if min(len(real), len(gen)) <= nhood_size:
        raise ValueError(f"precision/recall with k = {nhood_size} needs more than {nhood_size} items in each set")
    results = []
    for manifold, probes in ((real, gen), (gen, real)):
        radii = manifold_radii(manifold, nhood_size, row_batch_size, col_batch_size)
        results.append(coverage(manifold, radii, probes, row_batch_size, col_batch_size))
    return results[0], results[1]
