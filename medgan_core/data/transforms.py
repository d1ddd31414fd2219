"""Intensity and geometry transforms that turn scan values into 8-bit training slices.

Arrays follow the reader layout: volumes ``[Z, Y, X]``, 4-D ``[C, Z, Y, X]``, slices ``[Y, X]``. Every
function that produces display values returns uint8 in 0..255, rounded half up (``floor(v + 0.5)``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image

RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _to_uint8(scaled: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(scaled, 0.0, 255.0) + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _linear_table(dtype: str, low: float, span: float) -> np.ndarray:
    """uint8 of (v - low) / span * 255 for every value v of an 8/16-bit integer dtype, indexed by v's unsigned view."""
    info = np.iinfo(np.dtype(dtype))
    table = _to_uint8((np.arange(info.min, info.max + 1, dtype=np.float64) - low) * 255.0 / span)  # [v - min]
    return np.roll(table, info.min) if info.min < 0 else table


def linear_to_uint8(values: np.ndarray, low: float, span: float) -> np.ndarray:
    """``floor(clip((v - low) / span * 255, 0, 255) + 0.5)`` as uint8, the one mapping behind window and rescale.

    8/16-bit integer arrays (CT in HU, most MR) go through a cached 65,536-entry table: one gather per voxel
    instead of several float passes. Other dtypes are mapped on one float32 copy.
    """
    values = np.asarray(values)
    if values.dtype in (np.int8, np.uint8, np.int16, np.uint16):
        table = _linear_table(values.dtype.str, float(low), float(span))
        return np.take(table, values.view(np.uint8 if values.dtype.itemsize == 1 else np.uint16))
    out = values.astype(np.float32)
    out -= np.float32(low)
    out *= np.float32(255.0)  # multiply first: exact .5 ties (e.g. 50 HU in the liver window) stay exact
    out /= np.float32(span)
    np.clip(out, 0.0, 255.0, out=out)
    out += np.float32(0.5)
    np.floor(out, out=out)
    return out.astype(np.uint8)


def check_finite(array: np.ndarray, what: str = "image") -> None:
    """Raise ValueError if `array` holds NaN or infinity (they would turn silently into black or white)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{what} holds {bad} NaN or infinite values")


def window(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """Window by level and width (HU for CT) to uint8: ``(v - (level - width / 2)) / width * 255``, clipped,
    rounded half up. With level 50, width 350 (the liver preset): -125 HU -> 0, 225 HU -> 255, 50 HU -> 128.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    return linear_to_uint8(values, level - width / 2.0, width)


def rescale_intensity(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Linear map of low..high (default: the array's own min..max) to 0..255, rounded half up: what
    SimpleITK.RescaleIntensity(image, 0, 255) computes. Pass a volume's min and max to rescale its slices one
    at a time exactly as the whole volume would be. A constant array maps to 0.
    """
    values = np.asarray(values)
    low = float(values.min()) if low is None else float(low)
    high = float(values.max()) if high is None else float(high)
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    return linear_to_uint8(values, low, high - low)


def pad_to_square(image: np.ndarray, size: int, value: int = 0) -> np.ndarray:
    """Zero-pad a slice [H, W] (or [H, W, C]) evenly on both sides to [size, size]; the odd pixel goes last."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    if height > size or width > size:
        raise ValueError(f"slice {height}x{width} is larger than the {size}x{size} target; padding cannot shrink")
    top, left = (size - height) // 2, (size - width) // 2
    pads = [(top, size - height - top), (left, size - width - left)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pads, mode="constant", constant_values=value)


def resize(image: np.ndarray, size: int, filter_name: str = "lanczos") -> np.ndarray:
    """Resize a uint8 slice [H, W] to [size, size] with a named PIL filter (see RESIZE_FILTERS)."""
    if filter_name not in RESIZE_FILTERS:
        raise ValueError(f"unknown resize filter {filter_name!r}; choose one of {sorted(RESIZE_FILTERS)}")
    if image.dtype != np.uint8:
        raise TypeError(f"resize expects uint8 slices, got {image.dtype}")
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), RESIZE_FILTERS[filter_name]))


def fit_to_square(image: np.ndarray, size: int, fit: str = "pad", filter_name: str = "lanczos") -> np.ndarray:
    """Bring a uint8 slice to [size, size]: 'pad' (zero-pad, never shrink), 'resize', or 'pad-or-resize'
    (pad to the longer side, then resize if that side differs from `size`), or 'none' (must already fit)."""
    if fit == "pad":
        return pad_to_square(image, size)
    if fit == "resize":
        return resize(image, size, filter_name)
    if fit == "pad-or-resize":
        return resize(pad_to_square(image, max(image.shape[:2])), size, filter_name)
    if fit == "none":
        if image.shape[:2] != (size, size):
            raise ValueError(f"slice is {image.shape[0]}x{image.shape[1]}, expected {size}x{size}")
        return image
    raise ValueError(f"unknown fit {fit!r}; choose pad, resize, pad-or-resize or none")


def check_fit(shape: tuple[int, ...], size: int, fit: str) -> None:
    """Raise ValueError early when `fit_to_square` could not bring a slice of `shape` to [size, size]."""
    height, width = shape[:2]
    if fit == "pad" and (height > size or width > size):
        raise ValueError(f"slice {height}x{width} is larger than the {size}x{size} target; padding cannot shrink")
    if fit == "none" and (height, width) != (size, size):
        raise ValueError(f"slice is {height}x{width}, expected {size}x{size}")
    if fit not in ("pad", "none", "resize", "pad-or-resize"):
        raise ValueError(f"unknown fit {fit!r}; choose pad, resize, pad-or-resize or none")


def extract_channel(volume: np.ndarray, index: int, channel_axis: int | None = 0) -> np.ndarray:
    """Pick one channel (or frame) of a 4-D array [C, Z, Y, X] -> [Z, Y, X]. MSD brain: T1-Gd is index 2."""
    if channel_axis is None or volume.ndim != 4:
        raise ValueError(f"expected a 4-D volume with a channel axis, got shape {volume.shape}")
    if not 0 <= index < volume.shape[channel_axis]:
        raise ValueError(f"channel {index} requested but the volume has {volume.shape[channel_axis]} channels")
    return np.take(volume, index, axis=channel_axis)


def slices_with_labels(mask: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Indices z of the axial slices mask[z] ([Z, Y, X]) holding any of `labels` (e.g. liver present)."""
    flat = mask.reshape(mask.shape[0], -1)
    present = np.zeros(mask.shape[0], dtype=bool)
    for label in labels:
        present |= (flat == label).any(axis=1)
    return np.flatnonzero(present)


def nonempty_slices(volume_u8: np.ndarray, threshold: int = 0) -> np.ndarray:
    """Indices z of the slices of a uint8 volume [Z, Y, X] with at least one pixel brighter than `threshold`."""
    return np.flatnonzero(volume_u8.reshape(volume_u8.shape[0], -1).max(axis=1) > threshold)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """[H, W] or [H, W, C] 8-bit -> [H, W]: equal RGB channels are taken as they are, otherwise ITU-R 601 luma
    (PIL 'L'); an alpha channel is dropped. 16-bit grayscale is refused (it needs an explicit window)."""
    if image.ndim == 2:
        if image.dtype != np.uint8:
            raise ValueError(f"expected 8-bit grayscale, got {image.dtype}")
        return image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (2, 3, 4):
        raise ValueError(f"cannot make grayscale from shape {image.shape} dtype {image.dtype}")
    if image.shape[2] == 2:  # LA
        return np.ascontiguousarray(image[:, :, 0])
    rgb = image[:, :, :3]
    if (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all():
        return np.ascontiguousarray(rgb[:, :, 0])
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").convert("L"))
