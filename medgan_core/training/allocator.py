"""The CPU memory allocator of a training process: glibc as is, glibc tuned, jemalloc or tcmalloc.

Why: with glibc's default allocator every large tensor is a fresh mmap, so each CPU training step page-faults
gigabytes of newly zeroed memory (about 16 GiB per 256x256 G step) and returns it to the kernel afterwards.
`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736` keeps freed memory in the heap for reuse (issue 4
measured NVIDIA's own 256x256 G step going from 7.6 s to 2.7 s, for 1.4-2.5 GiB more peak memory).
`benchmarks/bench_networks.py --compare-allocators` on 2 cores, 256x256, batch 8 (2026-11-28): one G + D
training step with R1 took 55.0 s with NVIDIA's networks and glibc as is, 26.4 s with ours and the tuned glibc
(2.09x); ours with Debian's tcmalloc 27.1 s, with Debian's jemalloc 52.8 s. Hence tuned glibc by default.

glibc reads these variables (and LD_PRELOAD) only at start-up, so `medgan train` re-executes itself once with
them set (MEDGAN_ALLOCATOR marks the re-executed process). Choices (`--allocator`):
- auto: tuned on CPU, default on CUDA (GPU memory comes from PyTorch's caching allocator anyway)
- default: the environment as given
- tuned: MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=68719476736 (64 GiB)
- jemalloc / tcmalloc: LD_PRELOAD of Debian's libjemalloc2 / libtcmalloc-minimal4 (apt-get install them first)
"""

from __future__ import annotations

import glob
import os
import sys

import torch

TUNED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
MARKER = "MEDGAN_ALLOCATOR"
LIBRARY_PATTERNS = {
    "jemalloc": ["/usr/lib/*/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so*"],
    "tcmalloc": [
        "/usr/lib/*/libtcmalloc_minimal.so.4",
        "/usr/lib/*/libtcmalloc.so.4",
        "/usr/local/lib/libtcmalloc*.so*",
    ],
}


def resolve(choice: str, device: str) -> str:
    """'auto' -> 'tuned' when training runs on the CPU, else 'default'."""
    if choice != "auto":
        return choice
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return "tuned" if on_cpu else "default"


def find_library(name: str) -> str | None:
    for pattern in LIBRARY_PATTERNS[name]:
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[0]
    return None


def allocator_env(choice: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a process needs for allocator `choice` ('default', 'tuned', 'jemalloc', 'tcmalloc')."""
    env = dict(os.environ if base is None else base)
    env[MARKER] = choice
    if choice == "tuned":
        env.update(TUNED_ENV)
    elif choice in LIBRARY_PATTERNS:
        library = find_library(choice)
        if library is None:
            package = {"jemalloc": "libjemalloc2", "tcmalloc": "libtcmalloc-minimal4"}[choice]
            raise RuntimeError(
                f"--allocator {choice}: library not found; apt-get install {package}, or use --allocator tuned"
            )
        env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD", "")]))
    elif choice != "default":
        raise ValueError(f"unknown allocator {choice!r}")
    return env


def active() -> str | None:
    """The allocator this process was (re-)started with by `ensure`, or None."""
    return os.environ.get(MARKER)


def ensure(choice: str, device: str, log=print) -> str:
    """Make this process run with allocator `choice`, re-executing it once if needed; returns the choice.

    Returns without re-executing when the choice is 'default', when this process already is the re-executed
    one, or when the command line cannot be replayed (e.g. `python -c`).
    """
    choice = resolve(choice, device)
    if choice == "default" or active() is not None:
        return choice
    env = allocator_env(choice)
    argv = list(getattr(sys, "orig_argv", []))
    if not argv or "-c" in argv[1:2]:
        log(f"allocator {choice}: cannot re-execute this process; running with the allocator as is")
        return "default"
    log(f"allocator {choice}: restarting with {_describe(choice, env)}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    return choice  # not reached


def _describe(choice: str, env: dict[str, str]) -> str:
    if choice == "tuned":
        return " ".join(f"{k}={v}" for k, v in TUNED_ENV.items())
    return f"LD_PRELOAD={env.get('LD_PRELOAD')}"
