"""Fixtures for the metrics tests: seeded random Inception weights and real MNI152 brain slices as PNGs."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

from medgan_core.metrics.inception import random_fid_inception_state_dict
from medgan_core.utils.io import save_png


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """Tests never touch the network or the user's cache."""
    monkeypatch.setenv("MEDGAN_OFFLINE", "1")
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "medgan-cache"))
    monkeypatch.delenv("MEDGAN_INCEPTION", raising=False)


@pytest.fixture(scope="session")
def random_state_dict() -> dict[str, torch.Tensor]:
    return random_fid_inception_state_dict(seed=0)


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory, random_state_dict):
    """The random state dict saved like pytorch-fid's weight file (torch.save of a plain dict)."""
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(random_state_dict, path)
    return path


@pytest.fixture(scope="session")
def pytorch_fid_model(random_state_dict):
    """pytorch-fid's InceptionV3 (pool3 block) holding the same random weights, built without downloading."""
    import pytorch_fid.inception as pfi

    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *args, **kwargs: random_state_dict):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


@pytest.fixture(scope="session")
def mni_volume() -> np.ndarray:
    """nilearn's MNI152 T1 template (1 mm, 197 x 233 x 189) as uint8, scaled by its maximum."""
    from nilearn.datasets import load_mni152_template

    volume = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float64)
    return np.clip(volume / volume.max() * 255, 0, 255).astype(np.uint8)


def mni_slices(volume: np.ndarray, axis: int, start: int, count: int) -> np.ndarray:
    """uint8 [count, H, W] slices of `volume` along `axis`."""
    return np.stack([np.take(volume, index, axis=axis) for index in range(start, start + count)])


@pytest.fixture(scope="session")
def mni_folders(tmp_path_factory, mni_volume):
    """Two folders of 40 PNGs each: axial slices (197 x 233) and coronal slices (197 x 189) of the MNI template."""
    root = tmp_path_factory.mktemp("mni")
    folders = []
    for name, axis, start in (("axial", 2, 50), ("coronal", 1, 80)):
        folder = root / name
        for i, image in enumerate(mni_slices(mni_volume, axis, start, 40)):
            save_png(image, folder / f"slice{i:03d}.png")
        folders.append(folder)
    return tuple(folders)
