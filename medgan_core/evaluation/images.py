"""Reading a set of 8-bit images (a folder or a zip of PNGs) into one array, in a deterministic order."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_image_names(path: str | Path) -> list[str]:
    """Relative names of the images in a folder (recursively) or a zip, sorted."""
    path = Path(path)
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    else:
        raise FileNotFoundError(f"{path}: not a folder or a zip of images (give a folder of PNGs or a dataset zip)")
    if not names:
        raise ValueError(f"{path}: no images found (expected PNG files)")
    return sorted(names)


def load_images(path: str | Path, max_images: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Load images as uint8 [N, H, W, C] (C = 1 for grayscale, 3 for RGB) and their relative names.

    All images must share one size and channel count; the error names the first file that differs.
    """
    path = Path(path)
    names = list_image_names(path)[:max_images]
    archive = zipfile.ZipFile(path) if path.is_file() else None
    arrays: list[np.ndarray] = []
    try:
        for name in names:
            data = archive.read(name) if archive is not None else (path / name).read_bytes()
            try:
                with Image.open(io.BytesIO(data)) as image:
                    array = np.asarray(
                        image.convert("L") if image.mode in ("L", "I;16", "I", "1", "P") else image.convert("RGB")
                    )
            except Exception as exc:  # PIL raises many kinds of errors for damaged files
                raise ValueError(f"{path / name}: unreadable image ({exc}); remove or replace the file") from exc
            array = array[:, :, None] if array.ndim == 2 else array
            if arrays and array.shape != arrays[0].shape:
                raise ValueError(
                    f"{path / name}: shape {array.shape} differs from {path / names[0]} {arrays[0].shape}; "
                    "all images of a set must share one size and channel count"
                )
            arrays.append(array)
    finally:
        if archive is not None:
            archive.close()
    return np.stack(arrays), names
