"""Training images: NVIDIA's `ImageFolderDataset` semantics over medgan's one image reader.

The set is a folder or zip in NVIDIA's layout, read by `medgan_core.data.images.ImageSource` (the same files,
pixel modes, checks and `dataset.json` labels as metrics, evaluation and `medgan dataset`). Training adds one
rule: the images are square with a power-of-two side (one size and channel count, as for every set).

Items are `(image, label)`: image uint8 [C, H, W] (numpy), label float32 [c_dim] (one-hot for class indices,
the float vector as given otherwise, empty when unlabelled).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from medgan_core.data.images import DatasetError, ImageSource, stylegan_size_problem

__all__ = ["DatasetError", "ImageFolderDataset", "InfiniteSampler"]


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images from a folder or a zip, with NVIDIA's `max_size`, `xflip` and `use_labels` semantics.

    path:       folder or .zip of images (+ optional dataset.json), see `medgan_core.data.images`.
    resolution: expected side in pixels (None: taken from the images).
    use_labels: return labels from dataset.json (c_dim > 0) instead of empty labels.
    max_size:   keep at most this many images, a seeded random subset (np.random.RandomState(random_seed)).
    xflip:      append an x-flipped copy of every image (doubles the length; `--mirror`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int | None = None,
        use_labels: bool = False,
        max_size: int | None = None,
        xflip: bool = False,
        random_seed: int = 0,
    ):
        self.path = str(path)
        self.name = Path(self.path).stem
        self._source = ImageSource(path)
        self._raw_shape = [len(self._source), *self._check_shape(resolution)]
        self._use_labels = use_labels
        self._raw_labels: np.ndarray | None = None

        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:
            np.random.RandomState(random_seed % (1 << 31)).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])
        if use_labels:
            self._get_raw_labels()  # fail early on a missing or malformed dataset.json

    def _check_shape(self, resolution: int | None) -> list[int]:
        """[C, H, W] of the whole set, or DatasetError naming the offending files and the fix."""
        channels, height, width = self._source.check()
        problem = stylegan_size_problem(width, height)
        if problem:
            raise DatasetError(f"{self.path}: {problem}")
        if resolution is not None and resolution != height:
            raise DatasetError(
                f"{self.path}: images are {height}x{height}, expected {resolution}x{resolution}; resize them with "
                f"`medgan dataset --source DIR --dest OUT.zip --resolution {resolution}`"
            )
        return [channels, height, width]

    def close(self) -> None:
        self._source.close()

    # ---- labels ------------------------------------------------------------------------------------------------
    def _get_raw_labels(self) -> np.ndarray:
        """float32 [N, c_dim] for all raw images (one-hot from class indices); [N, 0] without use_labels."""
        if self._raw_labels is None:
            labels = self._source.labels() if self._use_labels else np.zeros([self._raw_shape[0], 0], np.float32)
            if labels is None:
                raise DatasetError(
                    f"{self.path}: --cond needs labels in dataset.json at the dataset root; none found "
                    "(`medgan dataset --labels CSV` or a source dataset.json adds them)"
                )
            if labels.dtype == np.int64:  # class indices -> one-hot, as NVIDIA's get_label
                onehot = np.zeros([labels.size, int(labels.max()) + 1], dtype=np.float32)
                onehot[np.arange(labels.size), labels] = 1
                labels = onehot
            self._raw_labels = labels
        return self._raw_labels

    # ---- dataset protocol --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._raw_idx.size

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        image = self._source.read(int(self._raw_idx[idx]))  # uint8 [C, H, W]
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)  # writable (the source may cache read-only arrays), as NVIDIA's

    def get_label(self, idx: int) -> np.ndarray:
        return self._get_raw_labels()[self._raw_idx[idx]].copy()

    @property
    def image_shape(self) -> list[int]:
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self._raw_shape[1]

    @property
    def resolution(self) -> int:
        return self._raw_shape[2]

    @property
    def label_shape(self) -> list[int]:
        return list(self._get_raw_labels().shape[1:])

    @property
    def label_dim(self) -> int:
        return int(np.prod(self.label_shape))

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0


class InfiniteSampler(torch.utils.data.Sampler):
    """An endless stream of indices for one rank: seeded, windowed shuffling as NVIDIA's sampler.

    Each rank takes every `num_replicas`-th index of one shared sequence, so ranks see disjoint images. With
    shuffle, the order is a seeded permutation that is locally re-shuffled by random swaps within a window of
    `window_size * len(dataset)` items, so the stream keeps changing across epochs.
    """

    def __init__(
        self,
        dataset,
        rank: int = 0,
        num_replicas: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        window_size: float = 0.5,
    ):
        if len(dataset) == 0 or not 0 <= rank < num_replicas or not 0 <= window_size <= 1:
            raise ValueError("InfiniteSampler needs a non-empty dataset, 0 <= rank < num_replicas, window in [0, 1]")
        self.size = len(dataset)
        self.rank, self.num_replicas = rank, num_replicas
        self.shuffle, self.seed, self.window_size = shuffle, seed, window_size

    def __iter__(self):
        order = np.arange(self.size)
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))
        idx = 0
        while True:
            i = idx % order.size
            if idx % self.num_replicas == self.rank:
                yield int(order[i])
            if window >= 2:
                j = (i - rnd.randint(window)) % order.size
                order[i], order[j] = order[j], order[i]
            idx += 1
