"""Atomic file output and metadata-free PNG writing.

Every file the package writes for a user goes through `atomic_write` (or `save_png`, which uses it): the data
goes to a temporary file in the destination folder and is renamed over the final name only once complete, so an
interrupted job never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator:
    """Open a temporary file beside `path` for writing; on success rename it to `path`, on error delete it.

    The rename makes the file appear whole or not at all if the process dies. `durable` also fsyncs the data
    before the rename, so the file survives a power loss too (snapshots want this; thousands of PNG slices,
    which a rerun can remake, may skip it: an fsync costs ~10 ms on a busy disk).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an 8-bit image as PNG with no metadata chunks (no text, time, gamma or colour profile).

    image: uint8 array [H, W] or [H, W, 1] (grayscale) or [H, W, 3] (RGB).
    """
    import io

    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"PNG output needs uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        pil = Image.fromarray(array, mode="L")
    elif array.ndim == 3 and array.shape[2] == 3:
        pil = Image.fromarray(array, mode="RGB")
    else:
        raise ValueError(f"PNG output needs [H, W], [H, W, 1] or [H, W, 3] pixels, got shape {array.shape}")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=False, compress_level=6)  # PIL adds no text chunks unless asked
    return buffer.getvalue()


def save_png(image: np.ndarray, path: str | os.PathLike, durable: bool = False) -> Path:
    """Write `image` (uint8 [H, W], [H, W, 1] or [H, W, 3]) to `path` atomically, without metadata."""
    path = Path(path)
    data = png_bytes(image)
    with atomic_write(path, durable=durable) as f:
        f.write(data)
    return path


def parse_int_list(text: str) -> list[int]:
    """Parse '0-3,7,10-11' into [0, 1, 2, 3, 7, 10, 11] (ranges are inclusive, as in NVIDIA's scripts)."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            start_text, end_text = part.rsplit("-", 1) if part.count("-") == 1 else part[1:].split("-", 1)
            start, end = int(start_text), int(end_text)
            if end < start:
                raise ValueError(f"range {part!r} ends before it starts")
            values.extend(range(start, end + 1))
        else:
            values.append(int(part))
    if not values:
        raise ValueError(f"no integers in {text!r}")
    return values
