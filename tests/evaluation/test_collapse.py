"""Mode collapse, measured (medgan_core.evaluation.collapse and the div128 metric): the pieces against independent
references (closed-form and brute-force mode coverage, scipy's pdist, block means), and the verdict on
generators made to collapse or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

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


def test_coverage_counts_the_distinct_reals_reached_against_a_random_draw():
    """Closed forms: m distinct real images drawn M times reach m reals; a brute-force loop gives the same count."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 12))
    expected = 50 * (1 - (1 - 1 / 50) ** 80)  # distinct images M = 80 random draws from N = 50 reach on average
    three = real[[4, 9, 30]][rng.integers(0, 3, 80)] + rng.normal(0, 1e-3, (80, 12))
    assert coverage(torch.from_numpy(real), torch.from_numpy(three)) == pytest.approx(3 / expected)
    fake = rng.normal(0.3, 1.1, size=(80, 12))
    moved = [fake, fake + 0.4, fake - 0.4]  # the same images at three shifts: each matched at its nearest
    reached = set()
    for j in range(80):
        best = min((np.linalg.norm(m[j] - real[i]), i) for m in moved for i in range(50))
        reached.add(best[1])
    ours = coverage(torch.from_numpy(real), [torch.from_numpy(m) for m in moved])
    assert ours == pytest.approx(len(reached) / expected)
    draws = [coverage(torch.from_numpy(real), torch.from_numpy(real[rng.integers(0, 50, 80)])) for _ in range(200)]
    assert np.mean(draws) == pytest.approx(1.0, abs=0.02)  # random reals score 1 on average


def test_shifted_images_move_by_whole_pixels_with_edges_repeated():
    images = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5, 1)
    moved = shifted(images, 1)
    assert len(moved) == 9 and all(m.shape == images.shape for m in moved)
    np.testing.assert_array_equal(moved[4], images)  # (dy, dx) = (0, 0)
    np.testing.assert_array_equal(moved[0][:, 1:, 1:], images[:, :-1, :-1])  # moved down and right by one
    np.testing.assert_array_equal(moved[0][:, 0, 1:], images[:, 0, :-1])  # the top row repeated


def test_a_generator_off_by_a_pixel_or_two_is_not_a_collapse(mni_slices):
    """Every real slice moved by up to 1/16 of the side (a small registration error; 4 pixels at 64x64) is matched
    to its own slice, so it reaches as many reals as a random draw; without the shift tolerance it would not."""
    real_pooled = pooled(mni_slices)
    plain = coverage(real_pooled, pooled(mni_slices))
    for dy, dx in [(0, 2), (2, 2), (4, 4)]:
        moved = [pooled(images) for images in shifted(np.roll(mni_slices, (dy, dx), axis=(1, 2)), 4)]
        assert coverage(real_pooled, moved) == pytest.approx(plain), (dy, dx)
    report = collapse_report(np.roll(mni_slices, (2, 4), axis=(1, 2)), mni_slices)
    assert report.coverage == pytest.approx(plain) and not report.collapsed
    assert coverage(real_pooled, pooled(np.roll(mni_slices, (4, 4), axis=(1, 2)))) < plain  # what a plain match says


def test_spread_and_pooling_match_closed_forms():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 7))
    assert mean_pairwise_distance(torch.from_numpy(x)) == pytest.approx(pdist(x).mean())
    images = rng.integers(0, 256, size=(3, 32, 32, 1), dtype=np.uint8)
    blocks = images[..., 0].reshape(3, 8, 4, 8, 4).mean(axis=(2, 4)) / 255  # 4x4 block means
    np.testing.assert_allclose(pooled(images).numpy(), blocks.reshape(3, 64), atol=1e-12)


def test_real_images_against_themselves_are_varied(mni_slices):
    report = collapse_report(mni_slices, mni_slices)
    n = len(mni_slices)  # every real reached once: more than n random reals reach, n (1 - (1 - 1/n)^n)
    assert report.spread_ratio == pytest.approx(1.0) and report.coverage == pytest.approx(1 / (1 - (1 - 1 / n) ** n))
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
    assert report.coverage < 0.1 and report.collapsed and "a few images" in report.describe()


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
