"""The one [-1, 1] -> uint8 mapping and the one image grid (medgan_core.utils.images)."""

import numpy as np
import pytest
import torch

from medgan_core.utils.images import float_to_uint8, image_grid, images_to_uint8, uint8_to_float


def test_float_to_uint8_is_nvidias_mapping():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 0.99, 1.0, 2.0])
    # floor(x * 127.5 + 128) clamped to [0, 255], worked out by hand
    assert float_to_uint8(x).tolist() == [0, 0, 64, 128, 191, 254, 255, 255]
    assert float_to_uint8(x).dtype == torch.uint8
    assert float_to_uint8(torch.zeros(2, 3, 4, 5, dtype=torch.float16)).shape == (2, 3, 4, 5)
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(float_to_uint8(uint8_to_float(levels)), levels)  # every 8-bit level survives the round trip


def test_images_to_uint8_gives_channels_last_numpy():
    images = torch.linspace(-1, 1, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    out = images_to_uint8(images)
    assert isinstance(out, np.ndarray) and out.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(out[1, 2, 3], float_to_uint8(images[1, :, 2, 3]).numpy())


def test_image_grid_tiles_row_by_row():
    images = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1) + 1
    assert image_grid(images)[:, :, 0].tolist() == [[1, 2, 3], [4, 5, 0]]  # ceil(sqrt(5)) = 3 columns
    assert image_grid(images, cols=2)[:, :, 0].tolist() == [[1, 2], [3, 4], [5, 0]]
    tiles = np.random.default_rng(0).integers(0, 256, (3, 4, 6, 3), dtype=np.uint8)
    grid = image_grid(tiles, cols=2)
    assert grid.shape == (8, 12, 3)
    np.testing.assert_array_equal(grid[4:8, 0:6], tiles[2])
    with pytest.raises(ValueError, match="N > 0"):
        image_grid(tiles[:0])
