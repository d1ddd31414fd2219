import numpy as np
import pytest
import torch

from medgan_core.evaluation.diversity import (
    diversity_report,
    mean_pairwise_msssim,
    msssim_settings,
    random_pairs,
)


def test_identical_images_give_one(mni_slices):
    copies = np.repeat(mni_slices[40:41], 6, axis=0)
    mean, _ = mean_pairwise_msssim(copies, num_pairs=10)
    assert mean == pytest.approx(1.0, abs=1e-5)


def test_unrelated_noise_is_near_zero():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(20, 64, 64, 1), dtype=np.uint8)
    mean, _ = mean_pairwise_msssim(noise, num_pairs=30)
    assert 0.0 <= mean < 0.05


def test_matches_pytorch_msssim_at_256():
    """At 256 px all five scales apply: compare with the independent pytorch-msssim implementation."""
    from pytorch_msssim import ms_ssim

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(1, 256, 256, 1)).astype(np.float32)
    images = np.clip(base + rng.normal(0, 40, size=(6, 256, 256, 1)), 0, 255).astype(np.uint8)
    ours, _ = mean_pairwise_msssim(images, num_pairs=8, seed=3)
    pairs = random_pairs(len(images), 8, seed=3)
    a = torch.from_numpy(images[pairs[:, 0]]).permute(0, 3, 1, 2).float()
    b = torch.from_numpy(images[pairs[:, 1]]).permute(0, 3, 1, 2).float()
    theirs = ms_ssim(a, b, data_range=255, size_average=False).mean().item()
    assert ours == pytest.approx(theirs, abs=0.01)


def test_scales_fit_resolution():
    assert msssim_settings(256)[0] == 5
    assert msssim_settings(64)[0] < 5 and msssim_settings(32)[0] >= 1
    for side in (16, 32, 64, 128, 256, 512):
        scales, weights = msssim_settings(side)
        assert len(weights) == scales and sum(weights) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        msssim_settings(8)


def test_collapse_shows(mni_slices):
    collapsed = np.repeat(mni_slices[30:32], 10, axis=0)
    result = diversity_report(collapsed, mni_slices, num_pairs=60)
    assert result.generated_mean > result.real_mean + 0.2


def test_random_pairs_are_distinct_and_seeded():
    pairs = random_pairs(5, 1000, seed=7)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    np.testing.assert_array_equal(pairs, random_pairs(5, 1000, seed=7))
