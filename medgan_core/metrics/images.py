"""A small reader of image folders and zips for metrics: uint8 NCHW batches in a fixed (sorted) order.

Accepts what NVIDIA's and pytorch-fid's tools accept as "a folder of images": a directory (searched recursively)
or a zip archive of PNG (also JPEG, BMP, TIFF, WebP) files; an optional `dataset.json` holds class labels in
NVIDIA's format (`{"labels": [["name.png", 3], ...]}`). Images must be 8-bit grayscale (L) or RGB; palette and
alpha images are converted to RGB (as PIL's `convert('RGB')` in pytorch-fid); 16-bit images are refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageSource:
    """The images of a folder or zip, sorted by relative path.

    read(i) -> uint8 [C, H, W] (C = 1 or 3); batch(indices) -> uint8 torch tensor [N, C, H, W].
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self._zip = None
            self.names = sorted(
                p.relative_to(self.path).as_posix()
                for p in self.path.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            self.names = sorted(n for n in self._zip.namelist() if Path(n).suffix.lower() in IMAGE_EXTENSIONS)
        else:
            raise FileNotFoundError(f"{self.path}: not a folder or a zip of images")
        if not self.names:
            raise ValueError(f"{self.path}: no images found (expected {', '.join(sorted(IMAGE_EXTENSIONS))} files)")
        self._content_hash: str | None = None

    def __len__(self) -> int:
        return len(self.names)

    def close(self) -> None:
        """Close the zip archive, if any (reading afterwards is an error)."""
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read_bytes(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def read(self, index: int) -> np.ndarray:
        """uint8 [C, H, W] pixels of image `index`."""
        name = self.names[index]
        try:
            with Image.open(io.BytesIO(self._read_bytes(name))) as image:
                if image.mode not in ("L", "RGB"):
                    if image.mode.startswith("I") or image.mode == "F":
                        raise ValueError(f"{image.mode} pixels are not 8-bit; convert the images to 8-bit PNG")
                    image = image.convert("RGB")
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path / name}: cannot read as an 8-bit image: {exc}") from exc
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 [N, C, H, W] for `indices`; all images must share one shape (else an error naming two files)."""
        arrays = [self.read(i) for i in indices]
        first = arrays[0].shape
        for i, array in zip(indices, arrays):
            if array.shape != first:
                raise ValueError(
                    f"{self.path}: images differ in shape: {self.names[indices[0]]} is {first} (C, H, W) but "
                    f"{self.names[i]} is {array.shape}; metrics need one size and channel count per set"
                )
        return torch.from_numpy(np.stack(arrays))

    def iter_batches(self, batch_size: int, indices: Sequence[int] | None = None) -> Iterator[torch.Tensor]:
        indices = list(range(len(self))) if indices is None else list(indices)
        for start in range(0, len(indices), batch_size):
            yield self.batch(indices[start : start + batch_size])

    def labels(self) -> np.ndarray | None:
        """int64 [N] class labels from dataset.json in image order, or None when absent."""
        try:
            text = self._read_bytes("dataset.json")
        except (KeyError, FileNotFoundError):
            return None
        entries = json.loads(text).get("labels")
        if entries is None:
            return None
        by_name = {name.replace("\\", "/"): label for name, label in entries}
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise ValueError(f"{self.path}: dataset.json has no label for {missing[0]} ({len(missing)} missing)")
        return np.array([by_name[n] for n in self.names], dtype=np.int64)

    def content_hash(self) -> str:
        """SHA-256 identifying the images' content (names and pixels' file bytes).

        For a zip it is computed from each member's name, size and CRC-32 in the central directory (no
        decompression); for a folder from each file's name and bytes (read once per process).
        """
        if self._content_hash is None:
            digest = hashlib.sha256()
            for name in self.names:
                digest.update(name.encode() + b"\0")
                if self._zip is not None:
                    info = self._zip.getinfo(name)
                    digest.update(f"{info.file_size}:{info.CRC:08x}\n".encode())
                else:
                    digest.update(hashlib.sha256(self._read_bytes(name)).digest())
            self._content_hash = digest.hexdigest()
        return self._content_hash
