"""Atomic file output and metadata-free PNG writing.

Every file the package writes for a user goes through `atomic_write` (or `save_png`, which uses it): the data
goes to a temporary file in the destination folder and is renamed over the final name only once complete, so an
interrupted job never leaves a half-written file behind. Logs that grow line by line use `append_whole`, which
cuts a line that failed part-way back off.

A write that fails for want of space or permission (disk full, over quota, read-only or not writable) raises
`DiskFault`, an OSError that names the file and the bytes it needed; the trainer adds how to continue.
"""

from __future__ import annotations

import contextlib
import errno
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


FAULT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})
# EX_IOERR (sysexits.h): an error doing I/O on a named file. Not EX_TEMPFAIL: trying again fails the same way until
# someone frees space or fixes the permissions, so a scheduler should not retry it blindly.
EXIT_DISK_FAULT = 74


class DiskFault(OSError):
    """A file could not be written for want of space or permission; nothing of it was left half-written.

    `continuation` (set by the trainer) says where the run stands and the command that continues it.
    """

    def __init__(self, path: str | os.PathLike, needed: int | None, cause: OSError):
        super().__init__(cause.errno, cause.strerror, str(path))
        self.path, self.needed = Path(path), needed
        self.free = _free_bytes(self.path.parent)
        self.continuation: str | None = None

    def __str__(self) -> str:
        need = "size unknown" if self.needed is None else f"needed {self.needed} bytes"
        free = "" if self.free is None else f", {self.free} free"
        text = f"cannot write {self.path}: {self.strerror} ({need}{free})"
        return f"{text}; {self.continuation}" if self.continuation else text


def _free_bytes(folder: Path) -> int | None:
    try:
        info = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return info.f_bavail * info.f_frsize


def disk_fault(exc: BaseException, path: str | os.PathLike, needed: int | None) -> DiskFault | None:
    """`exc` as a DiskFault of `path` when it is a want of space or permission in writing `path` (an error that names
    another file than `path`, its folders or a temporary beside it is not), else None."""
    if not isinstance(exc, OSError) or isinstance(exc, DiskFault) or exc.errno not in FAULT_ERRNOS:
        return None
    path = Path(path)
    named = None if exc.filename is None else Path(os.fsdecode(exc.filename))
    if named is not None and named != path and named not in path.parents and named.parent != path.parent:
        return None
    return DiskFault(path, needed, exc)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", durable: bool = True, size: int | None = None) -> Iterator:
    """Open a temporary file beside `path` for writing; on success rename it to `path`, on error delete it.

    The rename makes the file appear whole or not at all if the process dies. `durable` also fsyncs the data
    before the rename, so the file survives a power loss too (snapshots want this; thousands of PNG slices,
    which a rerun can remake, may skip it: an fsync costs ~10 ms on a busy disk). `size`: the bytes to be
    written, when known (a DiskFault reports them).
    """
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_name, path)
    except BaseException as exc:
        if tmp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        fault = disk_fault(exc, path, size)
        if fault is not None:
            raise fault from exc
        raise


def write_whole(path: str | os.PathLike, data: str | bytes, durable: bool = True) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_write(path, "wb", durable=durable, size=len(data)) as f:
        f.write(data)
    return Path(path)


def append_whole(file, data: bytes, path: str | os.PathLike) -> None:
    """Append `data` to `file` (binary, unbuffered, opened for appending) whole or not at all: a write that fails
    part-way is cut back off, so a log never ends in half a line; a want of space raises DiskFault."""
    start = os.fstat(file.fileno()).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[file.write(view) :]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(file.fileno(), start)
        fault = disk_fault(exc, path, len(data))
        if fault is not None:
            raise fault from exc
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
    with atomic_write(path, durable=durable, size=len(data)) as f:
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
