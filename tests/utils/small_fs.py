"""A small filesystem for disk-full tests: a tmpfs of a given size where this machine lets the tests mount one
(root, or a container that allows it), else None (the tests then simulate the fault by a patched write)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str) -> Iterator[Path | None]:
    """`folder` mounted as a tmpfs of `size` (e.g. '30m') inside the block, or None where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        yield None
        return
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def resize(folder: Path, size: str) -> None:
    """Give the mounted tmpfs `folder` a new size (what freeing space on a real disk amounts to)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)
