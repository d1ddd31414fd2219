"""Small image folders for Turing-test builds: distinct random 16x16 grayscale PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin


def make_images(folder: Path, count: int, seed: int, prefix: str = "slice") -> list[Path]:
    """Write `count` distinct random 16x16 8-bit PNGs, each with a text chunk that must not survive a build."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        info = PngImagePlugin.PngInfo()
        info.add_text("PatientName", f"DOE^JANE{i}")
        path = folder / f"{prefix}_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, size=(16, 16), dtype=np.uint8), mode="L").save(path, pnginfo=info)
        paths.append(path)
    return paths


@pytest.fixture
def image_dirs(tmp_path: Path) -> dict[str, Path]:
    """real/ (30 images), exp_a/ (12), exp_b/ (12) under tmp_path."""
    dirs = {"real": tmp_path / "real", "exp_a": tmp_path / "exp_a", "exp_b": tmp_path / "exp_b"}
    make_images(dirs["real"], 30, seed=1)
    make_images(dirs["exp_a"], 12, seed=2, prefix="seed")
    make_images(dirs["exp_b"], 12, seed=3, prefix="seed")
    return dirs
