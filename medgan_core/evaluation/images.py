"""Reading a set of 8-bit images (a folder or a zip) into one array, in a deterministic order.

A thin view over `medgan_core.data.images.ImageSource`, so that training, metrics and evaluation accept exactly
the same sets (file types, sorted order, pixel modes, checks, errors) and differ only in the array layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgan_core.data.images import ImageSource


def load_images(path: str | Path, max_images: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Load images as uint8 [N, H, W, C] (C = 1 for grayscale, 3 for RGB) and their relative names.

    All images of the set must share one size and channel count; the error names the files that differ.
    """
    with ImageSource(path) as source:
        count = len(source) if max_images is None else min(max_images, len(source))
        pixels = source.batch(range(count)).numpy()  # [N, C, H, W]
        return np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)), source.names[:count]
