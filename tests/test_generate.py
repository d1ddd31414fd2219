"""Seeds -> images: NVIDIA's latents and pixel mapping, determinism, labels, grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan_core.generate import (
    class_labels,
    generate_images,
    generator_batch_size,
    image_grid,
    seed_to_z,
    to_uint8,
)
from medgan_core.networks import Generator


class ConstantGenerator(torch.nn.Module):
    """Returns fixed pixel values and remembers its inputs (to check the mapping and labels in closed form)."""

    def __init__(self, values, c_dim=0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, c_dim, 1, 1
        self.values = torch.tensor(values, dtype=torch.float32)
        self.calls = []

    def forward(self, z, c, **kwargs):
        self.calls.append((z.clone(), c.clone(), kwargs))
        return self.values.reshape(-1, 1, 1, 1)[: z.shape[0]]


def test_seed_to_z_is_numpy_randomstate_and_ignores_global_state():
    np.random.seed(123)
    first = seed_to_z(42, 16)
    np.random.seed(999)
    assert first.shape == (1, 16) and first.dtype == np.float64
    np.testing.assert_array_equal(first, seed_to_z(42, 16))
    # NumPy's documented first standard-normal draw for RandomState(0) (Box-Muller legacy): 1.764052345967664
    assert seed_to_z(0, 1)[0, 0] == pytest.approx(1.764052345967664, abs=1e-15)
    with pytest.raises(ValueError):
        seed_to_z(-1, 4)


def test_pixel_mapping_closed_form():
    # x * 127.5 + 128, clamped to [0, 255], rounded down by the uint8 cast
    values = [-1.5, -1.0, -0.5, 0.0, 0.5, 0.999, 1.0, 2.0]
    expected = [0, 0, 64, 128, 191, 255, 255, 255]
    G = ConstantGenerator(values)
    images = generate_images(G, list(range(len(values))), batch_size=8)
    assert images.dtype == np.uint8 and images.shape == (8, 1, 1, 1)
    assert images[:, 0, 0, 0].tolist() == expected
    assert to_uint8(torch.tensor(values).reshape(-1, 1, 1, 1))[:, 0, 0, 0].tolist() == expected


def test_latents_labels_and_options_reach_the_generator():
    G = ConstantGenerator([0.0] * 3, c_dim=5)
    generate_images(G, [7, 8, 9], truncation_psi=0.7, truncation_cutoff=4, noise_mode="none", class_idx=2)
    z, c, kwargs = G.calls[0]
    np.testing.assert_allclose(z.numpy(), np.concatenate([seed_to_z(s, 4) for s in (7, 8, 9)]))
    assert c.tolist() == [[0, 0, 1, 0, 0]] * 3
    assert kwargs == dict(truncation_psi=0.7, truncation_cutoff=4, noise_mode="none")
    with pytest.raises(ValueError, match="conditional"):
        generate_images(G, [0])
    with pytest.raises(ValueError, match="out of range"):
        class_labels(5, 5, 1)
    assert class_labels(0, None, 2).shape == (2, 0)


def test_same_seeds_same_images_any_batching():
    torch.manual_seed(0)
    G = Generator(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=8,
        img_channels=1,
        mapping_kwargs={"num_layers": 2},
        channel_base=64,
        channel_max=16,
        num_fp16_res=0,
    ).eval()
    seeds = [3, 1, 4, 1, 5]
    a = generate_images(G, seeds, truncation_psi=0.7, batch_size=2)
    b = generate_images(G, seeds, truncation_psi=0.7, batch_size=2)
    assert a.shape == (5, 8, 8, 1) and np.array_equal(a, b)
    single = generate_images(G, seeds, truncation_psi=0.7, batch_size=1)
    assert np.abs(single.astype(int) - a.astype(int)).max() <= 1  # batching changes float rounding at most
    assert np.array_equal(a[1], a[3])  # seed 1 twice
    r1 = generate_images(G, seeds, noise_mode="random", batch_size=5)
    r2 = generate_images(G, seeds, noise_mode="random", batch_size=5)
    assert np.array_equal(r1, r2)


def test_image_grid_layout():
    images = np.stack([np.full((2, 3, 1), i, dtype=np.uint8) for i in range(1, 6)])
    grid = image_grid(images)  # 5 images -> 3 columns, 2 rows
    assert grid.shape == (4, 9, 1) and grid.dtype == np.uint8
    assert grid[0, 0, 0] == 1 and grid[0, 3, 0] == 2 and grid[0, 6, 0] == 3 and grid[2, 0, 0] == 4
    assert grid[2, 3, 0] == 5 and grid[2, 6, 0] == 0  # empty cell stays black
    assert image_grid(images, cols=5).shape == (2, 15, 1)
    with pytest.raises(ValueError):
        image_grid(images[:0])


def test_batch_size_chosen_for_the_device():
    """256 MiB (CPU) / 2 GiB (GPU) for the last block's [N, C, res, res] float32 activation, capped at 32 / 64."""
    with torch.device("meta"):
        G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=512, img_channels=1, channel_base=16384)
    assert G.synthesis.b512.conv1.out_channels == 32  # 32 x 512 x 512 x 4 bytes = 32 MiB per image
    assert generator_batch_size(G, "cpu") == 8 and generator_batch_size(G, "cuda") == 64
    small = ConstantGenerator([0.0] * 40)  # no synthesis layers: 64 channels assumed, 1x1 pixels
    assert generator_batch_size(small, "cpu") == 32
    images = generate_images(small, list(range(40)))  # default batch: two calls of 32 and 8
    assert images.shape == (40, 1, 1, 1) and [len(z) for z, _, _ in small.calls] == [32, 8]


def test_cpu_generation_reuses_the_heap_and_cuda_does_not(monkeypatch):
    import contextlib

    import medgan_core.generate as generate

    blocks = []

    @contextlib.contextmanager
    def spy(enabled=True):
        blocks.append(enabled)
        yield enabled

    monkeypatch.setattr(generate, "heap_reuse", spy)
    generate_images(ConstantGenerator([0.5, -0.5]), [0, 1], batch_size=2)
    assert blocks == [True]
    if torch.cuda.is_available():
        generate_images(ConstantGenerator([0.5, -0.5]).cuda(), [0, 1], batch_size=2, device="cuda")
        assert blocks == [True, False]
