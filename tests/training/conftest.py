"""Small synthetic PNG sets for the trainer's tests: bright discs on a dark background."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_NET = [
    "--cbase",
    "1024",
    "--cmax",
    "32",
    "--map",
    "2",
    "--metrics",
    "none",
    "--workers",
    "0",
    "--allocator",
    "default",
    "--device",
    "cpu",
]


def disc_images(count: int, size: int, seed: int = 0, channels: int = 1) -> list[np.ndarray]:
    """uint8 [size, size] (or [size, size, 3]) images: one disc of value 220 on background 30."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(count):
        cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
        radius = rng.uniform(0.12 * size, 0.25 * size)
        image = np.where((xx - cx) ** 2 + (yy - cy) ** 2 < radius**2, 220, 30).astype(np.uint8)
        images.append(np.repeat(image[:, :, None], 3, axis=2) if channels == 3 else image)
    return images


def write_folder(folder: Path, images: list[np.ndarray], labels: list | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        name = f"{i // 10:02d}/img{i:05d}.png"
        (folder / name).parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / name)
        names.append(name)
    if labels is not None:
        (folder / "dataset.json").write_text(json.dumps({"labels": [[n, lab] for n, lab in zip(names, labels)]}))
    return folder


def write_zip(path: Path, folder: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    return path


@pytest.fixture(scope="session")
def discs32(tmp_path_factory) -> Path:
    """64 grayscale 32x32 disc images in a folder."""
    return write_folder(tmp_path_factory.mktemp("discs32"), disc_images(64, 32))


@pytest.fixture(scope="session")
def discs16(tmp_path_factory) -> Path:
    """128 grayscale 16x16 disc images in a zip."""
    folder = write_folder(tmp_path_factory.mktemp("discs16"), disc_images(128, 16, seed=1))
    return write_zip(folder.parent / "discs16.zip", folder)
