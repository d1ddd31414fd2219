"""Training images: a folder or zip of 8-bit PNGs, optionally labelled, in NVIDIA's dataset layout.

Layout (as NVIDIA's `dataset_tool.py` writes it): PNG files anywhere below the folder / zip root, read in sorted
order of their relative path; an optional `dataset.json` at the root with `{"labels": [[relpath, label], ...]}`
where a label is an integer class index or a list of floats. Every image must be uint8 with 1 (grayscale) or 3
(RGB) channels, square, with a power-of-two side; one size and one channel count for the whole set.

Items are `(image, label)`: image uint8 [C, H, W] (numpy), label float32 [c_dim] (one-hot for class indices,
empty when unlabelled).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png",)


class DatasetError(ValueError):
    """A training set that cannot be used as given; the message names the files and the fix."""


class ImageFolderDataset(torch.utils.data.Dataset):
    """PNG images from a folder or a zip, with NVIDIA's `max_size`, `xflip` and `use_labels` semantics.

    path:       folder or .zip of PNGs (+ optional dataset.json).
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
        self._zipfile: zipfile.ZipFile | None = None
        self._zipfile_pid: int | None = None
        if os.path.isdir(self.path):
            self._type = "dir"
            names = [
                os.path.relpath(os.path.join(root, fname), self.path).replace(os.sep, "/")
                for root, _dirs, files in os.walk(self.path)
                for fname in files
            ]
        elif os.path.isfile(self.path) and zipfile.is_zipfile(self.path):
            self._type = "zip"
            names = self._get_zipfile().namelist()
        else:
            raise DatasetError(f"{self.path}: not a folder or a zip file; pass --data a folder or .zip of PNGs")
        self._image_fnames = sorted(n for n in names if n.lower().endswith(IMAGE_SUFFIXES))
        if not self._image_fnames:
            raise DatasetError(f"{self.path}: no PNG images found; build the set with `medgan dataset`")
        self._all_names = set(names)
        self.name = Path(self.path).stem
        self._raw_shape = [len(self._image_fnames), *self._check_shapes(resolution)]
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

    # ---- file access -------------------------------------------------------------------------------------------
    def _get_zipfile(self) -> zipfile.ZipFile:
        # One handle per process: DataLoader workers are forked, and a handle inherited from the parent shares its
        # file offset with every sibling, so concurrent reads would interleave and fail their CRC checks.
        if self._zipfile is None or self._zipfile_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self.path)
            self._zipfile_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname: str):
        if self._type == "dir":
            return open(os.path.join(self.path, fname), "rb")
        return self._get_zipfile().open(fname, "r")

    def close(self) -> None:
        if self._zipfile is not None:
            self._zipfile.close()
        self._zipfile = None

    def __getstate__(self):
        return dict(self.__dict__, _zipfile=None)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- validation --------------------------------------------------------------------------------------------
    def _check_shapes(self, resolution: int | None) -> list[int]:
        """Read every PNG header; return [C, H, W] or raise naming the offending files."""
        shapes: dict[tuple[int, int, int], list[str]] = {}
        bad_modes: list[str] = []
        for fname in self._image_fnames:
            with self._open_file(fname) as f, Image.open(f) as image:
                channels = {"L": 1, "RGB": 3}.get(image.mode)
                if channels is None:
                    bad_modes.append(f"{fname} (mode {image.mode})")
                    continue
                shapes.setdefault((channels, image.height, image.width), []).append(fname)
        if bad_modes:
            raise DatasetError(
                f"{self.path}: images must be 8-bit grayscale (L) or RGB; convert these: {_listing(bad_modes)}"
            )
        if len(shapes) > 1:
            groups = "; ".join(
                f"{c}x{h}x{w} (CxHxW): {_listing(names)}" for (c, h, w), names in sorted(shapes.items())
            )
            raise DatasetError(f"{self.path}: images differ in size or channel count: {groups}. Make them uniform.")
        (channels, height, width), _ = next(iter(shapes.items()))
        if height != width or height & (height - 1) or height < 4:
            raise DatasetError(
                f"{self.path}: images are {width}x{height}; StyleGAN2 needs square power-of-two images "
                "(e.g. 256x256): pad or resize them with `medgan dataset`"
            )
        if resolution is not None and resolution != height:
            raise DatasetError(f"{self.path}: images are {height}x{height}, expected {resolution}x{resolution}")
        return [channels, height, width]

    # ---- labels ------------------------------------------------------------------------------------------------
    def _get_raw_labels(self) -> np.ndarray:
        if self._raw_labels is None:
            self._raw_labels = self._load_raw_labels() if self._use_labels else None
            if self._raw_labels is None:
                self._raw_labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
        return self._raw_labels

    def _load_raw_labels(self) -> np.ndarray:
        if "dataset.json" not in self._all_names:
            raise DatasetError(f"{self.path}: --cond needs labels in dataset.json at the dataset root; none found")
        with self._open_file("dataset.json") as f:
            labels = json.load(f).get("labels")
        if labels is None:
            raise DatasetError(f"{self.path}: dataset.json has no 'labels' entry")
        labels = dict(labels)
        missing = [fname for fname in self._image_fnames if fname not in labels]
        if missing:
            raise DatasetError(f"{self.path}: dataset.json has no label for {_listing(missing)}")
        values = np.array([labels[fname] for fname in self._image_fnames])
        if values.ndim == 1:  # class indices -> one-hot
            if values.dtype.kind not in "iu" or values.min() < 0:
                raise DatasetError(f"{self.path}: class labels in dataset.json must be non-negative integers")
            onehot = np.zeros([values.size, int(values.max()) + 1], dtype=np.float32)
            onehot[np.arange(values.size), values] = 1
            return onehot
        return values.astype(np.float32)

    # ---- dataset protocol --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._raw_idx.size

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        with self._open_file(self._image_fnames[raw_idx]) as f:
            image = np.array(Image.open(f))
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        return image.transpose(2, 0, 1)  # HWC -> CHW

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        image = self._load_raw_image(int(self._raw_idx[idx]))
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image), self.get_label(idx)

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


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
