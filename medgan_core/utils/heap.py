"""Keep freed memory in glibc's heap while a CPU-heavy block runs: what `medgan train --allocator tuned` does by
restarting itself, done in-process for generation and metrics.

Why: with glibc as is, every tensor above the mmap threshold (at most 32 MiB; a 256x256 activation of a batch of 8
at 64 channels is 128 MiB) is a fresh mmap that is page-faulted and zeroed on first touch and unmapped when
freed, so each G call pays for its largest buffers again (benchmarks/README.md). glibc reads MALLOC_MMAP_MAX_ and
MALLOC_TRIM_THRESHOLD_ only at start-up, but `mallopt` changes the same two settings at run time:
M_MMAP_MAX = 0 (no mmap for large blocks: they come from the heap and are reused) and M_TRIM_THRESHOLD = 2 GiB - 1
(freed memory stays in the heap). On leaving the block glibc's documented defaults come back (65536 mmaps, 128 KiB
trim threshold) and `malloc_trim(0)` returns the freed memory to the system; the dynamic mmap threshold stays off
afterwards, as after any explicit mallopt.

Nothing happens (the block runs as is) where the allocator is already chosen: a process that `medgan train` started
with its --allocator (MEDGAN_ALLOCATOR set), the MALLOC_* variables or GLIBC_TUNABLES set, an allocator preloaded
(jemalloc, tcmalloc), a libc without glibc's mallopt, or MEDGAN_HEAP_REUSE=0.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's documented defaults
REUSE_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int
_lock = threading.Lock()
_depth = 0


@functools.cache
def _glibc():
    """The C library if it has glibc's mallopt and malloc_trim, else None (looked up once per process)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc only; musl and macOS have no mallopt semantics like these)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def heap_reuse_reason(environ=None) -> str | None:
    """Why `heap_reuse` would leave the allocator alone in this environment, or None when it would tune it."""
    environ = os.environ if environ is None else environ
    if environ.get("MEDGAN_HEAP_REUSE", "1") == "0":
        return "MEDGAN_HEAP_REUSE=0"
    if environ.get("MEDGAN_ALLOCATOR"):
        return f"the process was started with --allocator {environ['MEDGAN_ALLOCATOR']}"
    chosen = sorted(key for key in environ if key.startswith("MALLOC_") or key.startswith("GLIBC_TUNABLES"))
    if chosen:
        return f"the allocator is already set ({', '.join(chosen)})"
    if "malloc" in environ.get("LD_PRELOAD", ""):
        return "another allocator is preloaded (LD_PRELOAD)"
    if _glibc() is None:
        return "the C library is not glibc"
    return None


@contextlib.contextmanager
def heap_reuse(enabled: bool = True):
    """Within the block, large freed buffers stay in glibc's heap for the next tensor (see the module docstring).

    Yields True when it tuned the allocator, False when it left it as is. Nested and concurrent blocks share one
    setting; the outermost exit restores glibc's defaults and trims the heap. Results are unchanged: only where the
    memory comes from differs (peak memory is unchanged; it is returned at the end of the block).
    """
    global _depth
    libc = _glibc() if enabled and heap_reuse_reason() is None else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
