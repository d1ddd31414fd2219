"""Images for the evaluation tests: real MNI152 brain slices (nilearn, offline) and a seeded phantom family."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mni_slices() -> np.ndarray:
    """Axial slices of nilearn's bundled MNI152 T1 template, 64x64 uint8 [N, 64, 64, 1] (non-empty slices)."""
    import torch
    import torch.nn.functional as F
    from nilearn.datasets import load_mni152_template

    volume = np.asarray(load_mni152_template(resolution=2).get_fdata(), dtype=np.float32)  # [x, y, z]
    volume = np.clip(volume / np.percentile(volume, 99.5), 0, 1) * 255
    slices = np.transpose(volume, (2, 1, 0))[:, ::-1, :]  # [z, y (anterior up), x]
    slices = slices[slices.reshape(len(slices), -1).max(axis=1) > 20]
    side = max(slices.shape[1:])
    padded = np.zeros((len(slices), side, side), np.float32)
    y0, x0 = (side - slices.shape[1]) // 2, (side - slices.shape[2]) // 2
    padded[:, y0 : y0 + slices.shape[1], x0 : x0 + slices.shape[2]] = slices
    resized = F.interpolate(torch.from_numpy(padded)[:, None], size=(64, 64), mode="area")
    return np.round(resized.numpy()).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _phantom_family(count: int, seed: int, size: int = 32) -> np.ndarray:
    """Independent draws of a simple random 'anatomy': a few bright ellipses on a noisy background.

    uint8 [count, size, size, 1]; every image is a fresh sample of the same distribution (no two share a source).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((count, size, size, 1), np.uint8)
    for i in range(count):
        image = np.full((size, size), 30.0)
        for _ in range(rng.integers(2, 5)):
            cy, cx = rng.uniform(0.2, 0.8, 2)
            ry, rx = rng.uniform(0.08, 0.3, 2)
            image += rng.uniform(60, 160) * (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1)
        image += rng.normal(0, 8, image.shape)
        images[i, :, :, 0] = np.clip(image, 0, 255).astype(np.uint8)
    return images


@pytest.fixture(scope="session")
def phantom_family():
    """The phantom generator `_phantom_family(count, seed, size=32)`."""
    return _phantom_family
