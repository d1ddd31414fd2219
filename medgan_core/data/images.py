"""Image sets: a folder or a zip of 8-bit images in NVIDIA's dataset layout, read one way by all of medgan.

Layout (as NVIDIA's `dataset_tool.py` writes it and its `ImageFolderDataset` reads it): image files anywhere
below the root of a folder or zip, taken in sorted order of their '/'-separated relative path, and an optional
`dataset.json` at the root: `{"labels": null}` or `{"labels": [[relpath, label], ...]}` where every label is an
integer class index or every label is a list of floats.

Files: `IMAGE_EXTENSIONS` (PNG, JPEG, BMP, TIFF, WebP); names with a part starting with '.' (hidden files, editor
and OS litter) or `__MACOSX/` are skipped. Pixels: 8-bit grayscale (L) and RGB are read as stored; 1-bit and
gray+alpha become L, palette, RGBA, CMYK and YCbCr become RGB (PIL's `convert`, alpha dropped); 16-bit, 32-bit
and float images are refused, as scaling them to 8 bits is a choice for the user (`medgan prep` makes it for scans).

Training (`training.dataset`), metrics, evaluation (`evaluation.images`), packaging (`medgan dataset`) and the
Turing builder all read through `ImageSource` / `decode_image`, so a set that one of them accepts, all accept.
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

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
KINDS = "PNG, JPEG, BMP, TIFF or WebP"
LABELS_NAME = "dataset.json"
_AS_STORED = {"L": 1, "RGB": 3}
_CONVERTED = {"1": "L", "LA": "L", "La": "L", "P": "RGB", "PA": "RGB", "RGBA": "RGB", "RGBa": "RGB", "CMYK": "RGB",
              "YCbCr": "RGB"}  # fmt: skip


class DatasetError(ValueError):
    """An image set that cannot be used as given; the message names every offending file and the fix."""


def listing(names: Sequence[str], limit: int = 20) -> str:
    """'a, b, c' with at most `limit` names shown, then 'and N more'."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_image_name(name: str) -> bool:
    """Whether a '/'-separated relative path names an image file of a set (accepted suffix, not hidden)."""
    parts = name.split("/")
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_image_names(folder: str | os.PathLike) -> list[str]:
    """Relative '/'-separated paths of the images under `folder` (recursively), sorted."""
    return sorted(name for name in _walk(Path(folder)) if is_image_name(name))


def _walk(folder: Path) -> list[str]:
    return [
        os.path.relpath(os.path.join(root, fname), folder).replace(os.sep, "/")
        for root, _dirs, files in os.walk(folder)
        for fname in files
    ]


def pixel_mode(mode: str, where: str) -> str:
    """The mode ('L' or 'RGB') that an image stored in PIL mode `mode` is read as; DatasetError if refused."""
    if mode in _AS_STORED:
        return mode
    if mode in _CONVERTED:
        return _CONVERTED[mode]
    raise DatasetError(
        f"{where}: mode {mode} is not 8-bit grayscale or colour; convert it to 8-bit grayscale (L) or RGB "
        "(16-bit and float pixels need a windowing choice: see `medgan prep`)"
    )


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Fully decode one encoded image (`where` names it in errors) to uint8 [H, W, C], C = 1 (L) or 3 (RGB).

    Every pixel is decoded, so a truncated or corrupt file raises DatasetError here, never later.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            mode = pixel_mode(image.mode, where)
            image.load()  # decode everything now: a truncated file fails here, named
            pixels = np.asarray(image if image.mode == mode else image.convert(mode), dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, zlib/struct errors, bomb errors...
        raise DatasetError(f"{where}: cannot decode the image ({exc}); re-export or remove the file") from exc
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def parse_labels(entries, names: Sequence[str], where: str) -> np.ndarray | None:
    """The `labels` entry of a dataset.json for `names` (image order), as NVIDIA's ImageFolderDataset reads it.

    Returns int64 [N] class indices, float32 [N, D] label vectors, or None for `null`. Raises DatasetError when
    an image has no label or the labels are neither all non-negative integers nor all equal-length float lists.
    """
    if entries is None:
        return None
    try:
        by_name = {str(name).replace("\\", "/"): label for name, label in entries}
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'labels' must be a list of [file, label] pairs") from None
    missing = [name for name in names if name not in by_name]
    if missing:
        raise DatasetError(f"{where}: no label for {len(missing)} image(s): {listing(missing)}")
    values = [by_name[name] for name in names]
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return np.array(values, dtype=np.int64)
    try:
        vectors = np.array(values, dtype=np.float32)
    except (TypeError, ValueError):
        vectors = None
    if vectors is None or vectors.ndim != 2:
        raise DatasetError(
            f"{where}: labels must all be class indices (integers >= 0) or all be lists of numbers of one length"
        )
    return vectors


class ImageSource:
    """The images of a folder or zip in sorted order of their relative path, with their dataset.json labels.

    read(i) -> uint8 [C, H, W]; batch(indices) -> uint8 tensor [N, C, H, W]; check() -> [C, H, W] of the set.
    Safe to use from forked DataLoader workers (each process opens its own zip handle) and to pickle.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        if self.path.is_dir():
            self.is_zip = False
            all_names = _walk(self.path)
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self.is_zip = True
            all_names = self._archive().namelist()
        else:
            raise DatasetError(f"{self.path}: not a folder or a zip file; give a folder or .zip of images")
        self.names = sorted(name for name in all_names if is_image_name(name))
        if not self.names:
            raise DatasetError(f"{self.path}: no images found (no {KINDS} files); build the set with `medgan dataset`")
        self._has_labels_file = LABELS_NAME in all_names
        self._shape: list[int] | None = None
        self._content_hash: str | None = None

    # ---- files -------------------------------------------------------------------------------------------------
    def _archive(self) -> zipfile.ZipFile:
        # One handle per process: forked DataLoader workers that shared the parent's handle would share its file
        # offset, so their reads would interleave and fail CRC checks.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def where(self, name: str) -> str:
        """How errors name a file of the set: its path, or the zip's path / member name."""
        return str(self.path / name)

    def read_bytes(self, name: str) -> bytes:
        if self.is_zip:
            return self._archive().read(name)
        return (self.path / name).read_bytes()

    def close(self) -> None:
        """Close the zip handle, if any (a later read opens a new one)."""
        if self._zip is not None:
            self._zip.close()
        self._zip = None

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _zip=None, _zip_pid=None)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __len__(self) -> int:
        return len(self.names)

    # ---- pixels ------------------------------------------------------------------------------------------------
    def read(self, index: int) -> np.ndarray:
        """uint8 [C, H, W] pixels of image `index` (fully decoded; a bad file raises DatasetError naming it)."""
        name = self.names[index]
        return decode_image(self.read_bytes(name), self.where(name)).transpose(2, 0, 1)

    def check(self) -> list[int]:
        """[C, H, W] shared by every image, from the file headers; DatasetError listing every file that is
        unreadable, has a refused pixel mode, or differs in size or channel count from the majority."""
        if self._shape is None:
            problems, shapes = [], {}
            for name in self.names:
                try:
                    shapes.setdefault(self._header_shape(name), []).append(name)
                except DatasetError as exc:
                    problems.append(str(exc))
            problems += shape_problems(shapes)
            if problems:
                raise DatasetError(f"{len(problems)} problem(s) in {self.path}:\n  " + "\n  ".join(problems))
            self._shape = list(next(iter(shapes)))
        return list(self._shape)

    def _header_shape(self, name: str) -> tuple[int, int, int]:
        where = self.where(name)
        try:
            file = self._archive().open(name) if self.is_zip else open(self.path / name, "rb")
            with file, Image.open(file) as image:
                mode, (width, height) = image.mode, image.size
        except Exception as exc:
            raise DatasetError(f"{where}: cannot read the image header ({exc}); re-export or remove it") from exc
        return (_AS_STORED[pixel_mode(mode, where)], height, width)

    @property
    def image_shape(self) -> list[int]:
        """[C, H, W] of every image (checked over the whole set on first use)."""
        return self.check()

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 [N, C, H, W] for `indices` (the whole set is checked for one shape before the first batch)."""
        self.check()
        return torch.from_numpy(np.stack([self.read(int(i)) for i in indices]))

    def iter_batches(self, batch_size: int, indices: Sequence[int] | None = None) -> Iterator[torch.Tensor]:
        indices = list(range(len(self))) if indices is None else list(indices)
        for start in range(0, len(indices), batch_size):
            yield self.batch(indices[start : start + batch_size])

    # ---- labels and identity -----------------------------------------------------------------------------------
    def labels(self) -> np.ndarray | None:
        """dataset.json labels in image order: int64 [N] class indices, float32 [N, D] vectors, or None when the
        set has no dataset.json or its labels are null (see `parse_labels`)."""
        if not self._has_labels_file:
            return None
        where = self.where(LABELS_NAME)
        try:
            meta = json.loads(self.read_bytes(LABELS_NAME))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or "labels" not in meta:
            raise DatasetError(f"{where}: needs a 'labels' entry ({{\"labels\": null}} for an unlabelled set)")
        return parse_labels(meta["labels"], self.names, where)

    def content_hash(self) -> str:
        """SHA-256 identifying the images' content (names and file bytes).

        For a zip it is computed from each member's name, size and CRC-32 in the central directory (no
        decompression); for a folder from each file's name and bytes (read once per process).
        """
        if self._content_hash is None:
            digest = hashlib.sha256()
            for name in self.names:
                digest.update(name.encode() + b"\0")
                if self.is_zip:
                    info = self._archive().getinfo(name)
                    digest.update(f"{info.file_size}:{info.CRC:08x}\n".encode())
                else:
                    digest.update(hashlib.sha256(self.read_bytes(name)).digest())
            self._content_hash = digest.hexdigest()
        return self._content_hash


def shape_problems(shapes: dict[tuple[int, int, int], list[str]]) -> list[str]:
    """One line per [C, H, W] group that differs from the largest group, naming its files."""
    if len(shapes) < 2:
        return []
    majority = max(shapes, key=lambda shape: len(shapes[shape]))
    return [
        f"{listing(names)}: {_shape_text(shape)} differs from the majority's {_shape_text(majority)}; give every "
        "image one size and channel mode"
        for shape, names in sorted(shapes.items())
        if shape != majority
    ]


def _shape_text(shape: tuple[int, int, int]) -> str:
    channels, height, width = shape
    return f"{channels}x{height}x{width} (CxHxW, {'L' if channels == 1 else 'RGB'})"


def stylegan_size_problem(width: int, height: int) -> str | None:
    """Why a width x height image cannot train StyleGAN2 (None if it can), with the fix."""
    if width != height:
        return (
            f"{width}x{height} is not square; StyleGAN2 needs square power-of-two images: crop or pad them to "
            "square first"
        )
    if width < 4 or width & (width - 1):
        near = 1 << max(2, round(np.log2(max(width, 1))))
        return (
            f"side {width} is not a power of two; StyleGAN2 needs square power-of-two images: resize them with "
            f"`medgan dataset --source DIR --dest OUT.zip --resolution {near}`"
        )
    return None
