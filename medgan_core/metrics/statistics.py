"""Streaming feature statistics: float64 mean and covariance in memory independent of the number of images.

`FeatureStats` keeps the count n, the mean and the scatter matrix M2 = sum_i (x_i - mean)(x_i - mean)^T, all in
float64, and merges each batch with Chan, Golub and LeVeque's pairwise update (1979):

    n = n_a + n_b,   delta = mean_b - mean_a,   mean = mean_a + delta * n_b / n,
    M2 = M2_a + M2_b + delta delta^T * n_a n_b / n.

That avoids the cancellation of the textbook sum-of-squares formula and makes merging states across GPUs exact.
The covariance is M2 / (n - 1) (unbiased, as numpy.cov and pytorch-fid). Memory: O(D^2) for D-dim features, 32 MiB
for D = 2048, whatever the image count. KID needs the features themselves: `capture_all=True` also keeps them
(float32), up to `max_items`.
"""

from __future__ import annotations

import numpy as np
import torch


class FeatureStats:
    """Running statistics of feature vectors [N, D].

    capture_mean_cov: keep mean and covariance (FID). capture_all: keep every feature vector (KID).
    max_items: stop accepting features after this many (None: no limit).
    """

    def __init__(self, capture_mean_cov: bool = True, capture_all: bool = False, max_items: int | None = None):
        self.capture_mean_cov = capture_mean_cov
        self.capture_all = capture_all
        self.max_items = max_items
        self.num_items = 0
        self.feature_dim: int | None = None
        self._mean: np.ndarray | None = None  # float64 [D]
        self._m2: np.ndarray | None = None  # float64 [D, D]
        self._all: list[np.ndarray] = []  # float32 [n_i, D] chunks

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, features: np.ndarray | torch.Tensor) -> None:
        """Add a batch of feature vectors [N, D] (float32 or float64; torch tensors are moved to the CPU)."""
        if isinstance(features, torch.Tensor):
            features = features.detach().to("cpu", torch.float64).numpy()
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {x.shape}")
        if self.feature_dim is None:
            self.feature_dim = x.shape[1]
        elif x.shape[1] != self.feature_dim:
            raise ValueError(f"feature dimension changed from {self.feature_dim} to {x.shape[1]}")
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if len(x) == 0:
            return
        if self.capture_all:
            self._all.append(x.astype(np.float32))
        if self.capture_mean_cov:
            batch_mean = x.mean(axis=0)
            centred = x - batch_mean
            self._merge(len(x), batch_mean, centred.T @ centred)
        else:
            self.num_items += len(x)

    def _merge(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n_a = self.num_items
        if n_a == 0:
            self._mean, self._m2 = mean_b.copy(), m2_b.copy()
        else:
            n = n_a + n_b
            delta = mean_b - self._mean
            self._mean = self._mean + delta * (n_b / n)
            self._m2 += m2_b  # in place: the state stays two [D, D] float64 buffers plus one temporary
            self._m2 += np.outer(delta, delta * (n_a * n_b / n))
        self.num_items = n_a + n_b

    def merge(self, other: FeatureStats) -> None:
        """Add another FeatureStats' items (for example another rank's) to this one."""
        if other.num_items == 0:
            return
        if self.capture_all:
            self._all.extend(other._all)
        if self.capture_mean_cov:
            self._merge(other.num_items, other._mean, other._m2)
        else:
            self.num_items += other.num_items

    @property
    def mean(self) -> np.ndarray:
        """float64 [D]."""
        if not self.capture_mean_cov or self.num_items == 0:
            raise ValueError("no mean: statistics empty or not captured")
        return self._mean

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance, float64 [D, D] (needs at least 2 items)."""
        if not self.capture_mean_cov or self.num_items < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, have {self.num_items}")
        return self._m2 / (self.num_items - 1)

    def get_all(self) -> np.ndarray:
        """Every captured feature vector, float32 [N, D] (needs capture_all=True)."""
        if not self.capture_all:
            raise ValueError("features were not captured (capture_all=False)")
        if not self._all:
            return np.zeros([0, self.feature_dim or 0], dtype=np.float32)
        return np.concatenate(self._all, axis=0)

    # -- serialisation for the real-statistics cache -------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "num_items": np.array(self.num_items, dtype=np.int64),
            "flags": np.array([self.capture_mean_cov, self.capture_all], dtype=bool),
            "max_items": np.array(-1 if self.max_items is None else self.max_items, dtype=np.int64),
        }
        if self.capture_mean_cov and self.num_items:
            arrays["mean"], arrays["m2"] = self._mean, self._m2
        if self.capture_all:
            arrays["all"] = self.get_all()
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> FeatureStats:
        capture_mean_cov, capture_all = (bool(v) for v in arrays["flags"])
        max_items = int(arrays["max_items"])
        stats = cls(capture_mean_cov, capture_all, None if max_items < 0 else max_items)
        stats.num_items = int(arrays["num_items"])
        if capture_mean_cov and stats.num_items:
            stats._mean = np.asarray(arrays["mean"], dtype=np.float64)
            stats._m2 = np.asarray(arrays["m2"], dtype=np.float64)
            stats.feature_dim = stats._mean.shape[0]
        if capture_all:
            features = np.asarray(arrays["all"], dtype=np.float32)
            stats._all = [features]
            stats.feature_dim = features.shape[1]
        return stats
