"""Memorisation check: does the generator reproduce its training images?

With Inception weights at hand, `find_memorized_by_features` repeats the search on pool3 features (cosine).

For every generated image we find its nearest training images by normalised cross-correlation (NCC) of
downsampled images, which ignores global intensity shifts and contrast changes. The distance is 1 - NCC, in
[0, 2]. To decide what "too close" means we measure the same distance from *held-out real images* (ideally
other patients) to the training set: a generated image closer to a training image than a fraction `1 - fpr` of
held-out images is flagged. By construction about `fpr` of fresh held-out images would be flagged, so a flagged
fraction well above `fpr` means the generator copies.

Cost: each image becomes a unit vector of size^2 * C values (size 64: 4,096 floats, 16 kB). The search is one
matrix product per chunk: Q x R x size^2 multiply-adds (10k x 10k at size 64: 4e11, a few seconds on a GPU,
a few minutes on a laptop CPU). Memory: (Q_chunk x R) similarities plus the embeddings.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
import torch.nn.functional as F


@dataclasses.dataclass
class MemorizationResult:
    """Outcome of `find_memorized`. Distances are 1 - NCC (0 = identical up to intensity shift and scale)."""

    fpr: float  # the chosen false-positive rate on held-out images
    threshold: float  # distance below which a generated image is flagged
    flagged: np.ndarray  # bool [G]
    generated_distances: np.ndarray  # float [G], distance to the nearest training image
    generated_neighbours: np.ndarray  # int [G, K], indices of the K nearest training images, nearest first
    generated_neighbour_distances: np.ndarray  # float [G, K]
    holdout_distances: np.ndarray  # float [H], distance of each held-out image to its nearest training image
    reference: str  # 'holdout' or 'leave-one-out'
    size: int  # side of the downsampled images compared (0: Inception features)

    @property
    def flagged_fraction(self) -> float:
        return float(self.flagged.mean()) if self.flagged.size else 0.0

    @property
    def holdout_flagged_fraction(self) -> float:
        return float((self.holdout_distances < self.threshold).mean()) if self.holdout_distances.size else 0.0

    def summary(self) -> dict:
        """JSON-ready summary (fractions in [0, 1])."""
        return {
            "flagged_fraction": self.flagged_fraction,
            "num_flagged": int(self.flagged.sum()),
            "num_generated": int(self.flagged.size),
            "fpr": self.fpr,
            "threshold": self.threshold,
            "holdout_flagged_fraction": self.holdout_flagged_fraction,
            "num_holdout": int(self.holdout_distances.size),
            "reference": self.reference,
            "size": self.size,
            "generated_distance_median": float(np.median(self.generated_distances)),
            "holdout_distance_median": float(np.median(self.holdout_distances)),
        }


def ncc_embedding(
    images: np.ndarray | torch.Tensor, size: int = 64, device: str | torch.device = "cpu", batch_size: int = 512
) -> torch.Tensor:
    """Unit vectors whose dot products are the normalised cross-correlations of the downsampled images.

    images: uint8 or float [N, H, W, C] (NumPy layout) or float tensor [N, C, H, W].
    Returns float32 [N, C * size * size] on `device`. Constant images give zero vectors (NCC 0 with anything).
    """
    is_numpy = isinstance(images, np.ndarray)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2) if is_numpy else chunk
        x = x.to(device=device, dtype=torch.float32)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="area")  # box filter: averages, no aliasing
        x = x.flatten(1)
        x = x - x.mean(dim=1, keepdim=True)
        out.append(x / x.norm(dim=1, keepdim=True).clamp_min(1e-8))
    return torch.cat(out)


def nearest_neighbours(
    queries: torch.Tensor, references: torch.Tensor, k: int = 1, exclude_self: bool = False, chunk_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar references of every query by dot product (NCC for `ncc_embedding` vectors).

    queries: [Q, D], references: [R, D] (unit vectors). With exclude_self, queries are the references themselves
    and each row skips its own index (leave-one-out). Returns (similarities [Q, k], indices [Q, k]), best first.
    """
    k = min(k, references.shape[0] - (1 if exclude_self else 0))
    if k < 1:
        raise ValueError("need at least one reference image (two for leave-one-out)")
    sims, idxs = [], []
    for start in range(0, queries.shape[0], chunk_size):
        block = queries[start : start + chunk_size] @ references.T  # [q, R]
        if exclude_self:
            rows = torch.arange(block.shape[0], device=block.device)
            block[rows, rows + start] = -float("inf")
        values, indices = block.topk(k, dim=1)
        sims.append(values.cpu())
        idxs.append(indices.cpu())
    return torch.cat(sims), torch.cat(idxs)


def find_memorized(
    generated: np.ndarray,
    train: np.ndarray,
    holdout: np.ndarray | None = None,
    fpr: float = 0.01,
    top: int = 5,
    size: int = 64,
    device: str | torch.device = "cpu",
    chunk_size: int = 1024,
) -> MemorizationResult:
    """Flag generated images that are closer to a training image than held-out real images are (pixel NCC).

    generated, train, holdout: uint8 [N, H, W, C]. Without `holdout` the reference is leave-one-out on the
    training set (each training image against the others): adjacent slices of one patient are near-duplicates,
    so this reference is strict and flags little; prefer held-out patients.
    """
    holdout_vectors = None
    if holdout is not None and len(holdout) > 0:
        holdout_vectors = ncc_embedding(holdout, size, device)
    return flag_by_vectors(
        ncc_embedding(generated, size, device),
        ncc_embedding(train, size, device),
        holdout_vectors,
        fpr,
        top,
        size,
        chunk_size,
    )


def feature_embedding(images: np.ndarray, detector, batch_size: int = 64) -> torch.Tensor:
    """Unit-length Inception features (cosine similarity by dot product); images uint8 [N, H, W, C]."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).permute(0, 3, 1, 2)
        features = detector(batch).float()
        out.append(features / features.norm(dim=1, keepdim=True).clamp_min(1e-8))
    return torch.cat(out)


def find_memorized_by_features(
    generated: np.ndarray,
    train: np.ndarray,
    holdout: np.ndarray | None,
    detector,
    fpr: float = 0.01,
    top: int = 5,
    chunk_size: int = 1024,
) -> MemorizationResult:
    """The same check in Inception feature space (distance 1 - cosine similarity of pool3 features).

    detector: a callable uint8 [N, C, H, W] -> features [N, D], e.g. `medgan_core.metrics.detector.load_inception`.
    """
    holdout_vectors = feature_embedding(holdout, detector) if holdout is not None and len(holdout) else None
    return flag_by_vectors(
        feature_embedding(generated, detector),
        feature_embedding(train, detector),
        holdout_vectors,
        fpr,
        top,
        0,
        chunk_size,
    )


def flag_by_vectors(
    generated: torch.Tensor,
    train: torch.Tensor,
    holdout: torch.Tensor | None,
    fpr: float,
    top: int,
    size: int,
    chunk_size: int = 1024,
) -> MemorizationResult:
    """Nearest-neighbour search and held-out calibration on unit vectors [N, D] (any embedding)."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    gen_sims, gen_idx = nearest_neighbours(generated, train, top, chunk_size=chunk_size)
    if holdout is not None:
        hold_sims, _ = nearest_neighbours(holdout, train, 1, chunk_size=chunk_size)
        reference = "holdout"
    else:
        warnings.warn(
            "no held-out images given: calibrating on leave-one-out training distances, which is strict "
            "when training images are adjacent slices of the same patients",
            stacklevel=3,
        )
        hold_sims, _ = nearest_neighbours(train, train, 1, exclude_self=True, chunk_size=chunk_size)
        reference = "leave-one-out"
    generated_distances = (1 - gen_sims[:, 0]).numpy().astype(np.float64)
    holdout_distances = (1 - hold_sims[:, 0]).numpy().astype(np.float64)
    threshold = float(np.quantile(holdout_distances, fpr))
    return MemorizationResult(
        fpr=fpr,
        threshold=threshold,
        flagged=generated_distances < threshold,
        generated_distances=generated_distances,
        generated_neighbours=gen_idx.numpy(),
        generated_neighbour_distances=(1 - gen_sims).numpy().astype(np.float64),
        holdout_distances=holdout_distances,
        reference=reference,
        size=size,
    )


def plot_distances(result: MemorizationResult, path=None):
    """Histogram of nearest-training-image distances: generated images vs the reference (held-out real images, or
    each training image against the others: leave-one-out), with the flag threshold; every series in the legend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    reference = (
        "held-out real images" if result.reference == "holdout" else "training images, leave-one-out (reference)"
    )
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    values = np.concatenate([result.generated_distances, result.holdout_distances])
    bins = np.histogram_bin_edges(values, bins=30)
    for distances, label, color in [(result.generated_distances, "generated images", "tab:blue"),
                                    (result.holdout_distances, reference, "tab:orange")]:  # fmt: skip
        ax.hist(distances, bins=bins, density=True, histtype="step", linewidth=1.5, color=color, label=label)
    ax.axvline(result.threshold, color="black", linestyle="--",
               label=f"threshold: {result.fpr:.0%} of the reference lies below")  # fmt: skip
    ax.set(xlabel="distance to nearest training image (1 - NCC)", ylabel="density")
    ax.set_title(f"Memorisation: {result.flagged_fraction:.1%} of generated images flagged", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def closest_pairs_grid(
    result: MemorizationResult, generated: np.ndarray, train: np.ndarray, num_pairs: int = 8
) -> np.ndarray:
    """An image grid of the closest generated/training pairs: each row is (generated | nearest training image).

    Returns uint8 [rows * H, 2 * W + gap, C], pairs sorted by distance, closest first.
    """
    order = np.argsort(result.generated_distances)[:num_pairs]
    height, width, channels = generated.shape[1:]
    gap = np.full((height, 4, channels), 255, dtype=np.uint8)
    rows = []
    for i in order:
        nearest = train[result.generated_neighbours[i, 0]]
        rows.append(np.concatenate([generated[i], gap, nearest], axis=1))
        rows.append(np.full((4, 2 * width + 4, channels), 255, dtype=np.uint8))
    return np.concatenate(rows[:-1], axis=0)
