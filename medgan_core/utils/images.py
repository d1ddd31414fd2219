"""Generator output to 8-bit pixels, and image grids: the one place these are written.

NVIDIA's mapping from the generator's range [-1, 1] to 8-bit pixels is x * 127.5 + 128, clamped to [0, 255] and
rounded down by the uint8 cast (`gen_images.py`, `training_loop.py`, `metrics/metric_utils.py`); medgan's PNGs,
grids and metric features all go through `float_to_uint8` so that they agree with NVIDIA's to the pixel.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float pixels in about [-1, 1] (any shape, e.g. G's output [N, C, H, W]) -> uint8, same shape and device."""
    return (images.detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape) -> float32 in [-1, 1] (x / 127.5 - 1), the trainer's input range."""
    return images.to(torch.float32) / 127.5 - 1


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output [N, C, H, W] in about [-1, 1] -> uint8 numpy [N, H, W, C] on the CPU (for PNGs, grids)."""
    return float_to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Tile images [N, H, W, C] row by row into one [rows * H, cols * W, C] image; empty cells are black (0).

    cols defaults to ceil(sqrt(N)); the grid keeps the images' dtype.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"image_grid needs images [N, H, W, C] with N > 0, got shape {images.shape}")
    count, height, width, channels = images.shape
    cols = cols or math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    grid = np.zeros([rows * height, cols * width, channels], dtype=images.dtype)
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        grid[row * height : (row + 1) * height, col * width : (col + 1) * width] = image
    return grid
