"""Fixtures for the metrics tests: seeded random Inception weights, real MNI152 brain slices as PNGs, and NVIDIA's
metric code run on features we choose (`nvidia_pr`, `nvidia_is`; they need $MEDGAN_NVIDIA_SRC).

NVIDIA's functions take features from `metric_utils.compute_feature_stats_for_dataset/_generator`; these are
replaced, for the duration of a call, by functions returning NVIDIA's own `FeatureStats` filled with the given
arrays. PyTorch has no float16 `cdist` on the CPU, so on the CPU a float16 `torch.cdist` call is answered in
float32 and rounded to float16 (what `medgan_core.metrics.precision_recall` does on every device).
"""

from __future__ import annotations

import importlib
from unittest import mock

import numpy as np
import pytest
import torch

from medgan_core.checkpoint.nvidia_code import import_nvidia
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


_cdist = torch.cdist


def _cdist_with_cpu_half(x1, x2, *args, **kwargs):
    if x1.dtype == torch.float16 and x1.device.type == "cpu":
        return _cdist(x1.float(), x2.float(), *args, **kwargs).to(torch.float16)
    return _cdist(x1, x2, *args, **kwargs)


def _nvidia_module(nvidia_src, name: str):
    import_nvidia(nvidia_src)
    return importlib.import_module(name)


def _stats(metric_utils, features: np.ndarray):
    stats = metric_utils.FeatureStats(capture_all=True, max_items=len(features))
    stats.append(np.asarray(features, dtype=np.float32))
    return stats


def _nvidia_precision_recall(nvidia_src, real, gen, nhood_size=3, row_batch_size=10000, col_batch_size=10000):
    pr = _nvidia_module(nvidia_src, "metrics.precision_recall")
    metric_utils = pr.metric_utils
    opts = metric_utils.MetricOptions(num_gpus=1, rank=0, device=torch.device("cpu"))
    with (
        mock.patch.object(metric_utils, "compute_feature_stats_for_dataset", lambda **kw: _stats(metric_utils, real)),
        mock.patch.object(metric_utils, "compute_feature_stats_for_generator", lambda **kw: _stats(metric_utils, gen)),
        mock.patch.object(torch, "cdist", _cdist_with_cpu_half),
    ):
        return pr.compute_pr(opts, max_real=len(real), num_gen=len(gen), nhood_size=nhood_size,
                             row_batch_size=row_batch_size, col_batch_size=col_batch_size)  # fmt: skip


def _nvidia_inception_score(nvidia_src, probabilities, num_splits=10):
    inception_score = _nvidia_module(nvidia_src, "metrics.inception_score")
    metric_utils = inception_score.metric_utils
    opts = metric_utils.MetricOptions(num_gpus=1, rank=0, device=torch.device("cpu"))
    fake = lambda **kw: _stats(metric_utils, probabilities)  # noqa: E731
    with mock.patch.object(metric_utils, "compute_feature_stats_for_generator", fake):
        return inception_score.compute_is(opts, num_gen=len(probabilities), num_splits=num_splits)


@pytest.fixture
def nvidia_pr(nvidia_src):
    """(real, gen, nhood_size=3, row_batch_size=10000, col_batch_size=10000) -> NVIDIA's (precision, recall)."""
    return lambda *args, **kwargs: _nvidia_precision_recall(nvidia_src, *args, **kwargs)


@pytest.fixture
def nvidia_is(nvidia_src):
    """(probabilities, num_splits=10) -> NVIDIA's (mean, std) Inception Score."""
    return lambda *args, **kwargs: _nvidia_inception_score(nvidia_src, *args, **kwargs)
