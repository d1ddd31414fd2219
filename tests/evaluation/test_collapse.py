"""Mode collapse, measured (medgan_core.evaluation.collapse and the div128 metric): the pieces against independent
references (prdc's coverage, scipy's pdist, block means), and the verdict on generators made to collapse or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist

from medgan_core.evaluation.collapse import (
    COLLAPSE_SPREAD,
    collapse_report,
    coverage,
    mean_pairwise_distance,
    pooled,
    shifted,
)
from medgan_core.evaluation.hooks import div128
from medgan_core.utils.io import save_png


class LookupGenerator(torch.nn.Module):
    """A stand-in generator: each latent picks an image of a fixed bank (seeded by the latent), optionally with
    noise. `bank` of one image = a generator in full collapse."""

    def __init__(self, bank: np.ndarray, noise: float = 0.0):
        super().__init__()
        self.register_buffer("bank", torch.from_numpy(bank).permute(0, 3, 1, 2).float() / 127.5 - 1)
        self.noise = noise
        self.z_dim, self.c_dim = 8, 0
        self.img_resolution, self.img_channels = bank.shape[1], bank.shape[3]

    def forward(self, z, c, noise_mode="const", **_kwargs):
        index = (z[:, 0].abs() * 1e4).long() % len(self.bank)
        images = self.bank[index]
        return images + self.noise * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory, mni_slices):
    folder = tmp_path_factory.mktemp("reals")
    for index, image in enumerate(mni_slices):
        save_png(image[..., 0], folder / f"{index:04d}.png")
    return folder


def test_coverage_matches_prdc():
    from prdc import compute_prdc

    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 12))
    fake = rng.normal(0.4, 1.2, size=(80, 12))
    theirs = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)["coverage"]
    assert coverage(torch.from_numpy(real), torch.from_numpy(fake), k=5) == pytest.approx(theirs)


def test_shifted_coverage_is_the_nearest_image_over_every_shift():
    """A list of generated sets covers a real when any of them does: the minimum over shifts of prdc's distance."""
    from prdc import compute_prdc

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 6)), rng.normal(0.6, 1.0, size=(50, 6))
    moved = [fake, fake + 0.3, fake - 0.3]
    theirs = np.mean([compute_prdc(real, f, nearest_k=5)["coverage"] for f in moved])  # each alone
    ours = coverage(torch.from_numpy(real), [torch.from_numpy(f) for f in moved], k=5)
    radii = np.sort(cdist(real, real), axis=1)[:, 5]
    nearest = np.min([cdist(real, f).min(axis=1) for f in moved], axis=0)
    assert ours == pytest.approx(np.mean(nearest < radii)) and ours >= theirs


def test_shifted_images_move_by_whole_pixels_with_edges_repeated():
    images = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5, 1)
    moved = shifted(images, 1)
    assert len(moved) == 9 and all(m.shape == images.shape for m in moved)
    np.testing.assert_array_equal(moved[4], images)  # (dy, dx) = (0, 0)
    np.testing.assert_array_equal(moved[0][:, 1:, 1:], images[:, :-1, :-1])  # moved down and right by one
    np.testing.assert_array_equal(moved[0][:, 0, 1:], images[:, 0, :-1])  # the top row repeated


def test_a_generator_off_by_a_pixel_or_two_is_not_a_collapse(mni_slices):
    """Every real slice moved by up to 1/16 of the side (a small registration error; 4 pixels at 64x64) covers the
    reals; without the shift tolerance it would cover few of them, as the slices of one brain lie close together."""
    real_pooled = pooled(mni_slices)
    for dy, dx in [(0, 2), (2, 2), (4, 4)]:
        moved = [pooled(images) for images in shifted(np.roll(mni_slices, (dy, dx), axis=(1, 2)), 4)]
        assert coverage(real_pooled, moved) > 0.9, (dy, dx)
    report = collapse_report(np.roll(mni_slices, (2, 4), axis=(1, 2)), mni_slices)
    assert report.coverage > 0.9 and not report.collapsed
    assert coverage(real_pooled, pooled(np.roll(mni_slices, 4, axis=2))) < 0.25  # what a plain distance says


def test_spread_and_pooling_match_closed_forms():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 7))
    assert mean_pairwise_distance(torch.from_numpy(x)) == pytest.approx(pdist(x).mean())
    images = rng.integers(0, 256, size=(3, 32, 32, 1), dtype=np.uint8)
    blocks = images[..., 0].reshape(3, 8, 4, 8, 4).mean(axis=(2, 4)) / 255  # 4x4 block means
    np.testing.assert_allclose(pooled(images).numpy(), blocks.reshape(3, 64), atol=1e-12)


def test_real_images_against_themselves_are_varied(mni_slices):
    report = collapse_report(mni_slices, mni_slices)
    assert report.spread_ratio == pytest.approx(1.0) and report.coverage == 1.0
    assert not report.collapsed and report.state == "varied"


def test_collapsed_generator_is_named(real_folder, mni_slices):
    G = LookupGenerator(mni_slices[40:41], noise=0.05)  # one slice, noisy pixels
    result = div128(G, str(real_folder))
    assert result["div128"] < COLLAPSE_SPREAD and result["div128_collapse"] == 1.0
    assert result["div128_coverage"] < 0.1 and result["div128_msssim"] > result["div128_msssim_real"]


def test_generator_of_few_modes_is_a_collapse(mni_slices):
    few = mni_slices[[10, 40, 70]][np.random.default_rng(0).integers(0, 3, 128)]
    report = collapse_report(few, mni_slices)
    assert report.spread_ratio > COLLAPSE_SPREAD  # the spread alone misses it; coverage and MS-SSIM do not
    assert report.collapsed and "few of the real ones" in report.describe()


def test_varied_generator_is_not_a_collapse(real_folder, mni_slices):
    G = LookupGenerator(mni_slices, noise=0.02)  # draws every slice of the data
    result = div128(G, str(real_folder))
    assert result["div128"] > 0.8 and result["div128_coverage"] > 0.5 and result["div128_collapse"] == 0.0


def test_untrained_noise_is_unlike_the_reals_not_a_collapse(mni_slices):
    noise = np.random.default_rng(2).integers(0, 256, size=(128, 64, 64, 1), dtype=np.uint8)
    report = collapse_report(noise, mni_slices)
    assert not report.collapsed and report.state == "unlike the reals"


def test_other_ranks_return_nan(real_folder, mni_slices):
    result = div128(LookupGenerator(mni_slices), str(real_folder), rank=1)
    assert len(result) == 5 and all(np.isnan(v) for v in result.values())
