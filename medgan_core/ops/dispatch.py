"""Choosing an implementation for each op: the pure-PyTorch reference or a fused Triton kernel.

`impl` is one of 'auto', 'ref' or 'triton'. 'ref' always uses the reference code; 'triton' requires the fused
kernel (an error naming the fix when it cannot run); 'auto' uses the fused kernel for CUDA tensors when Triton is
importable, the reference otherwise. Falling back for a reason the user can fix (a CUDA tensor but no Triton)
warns once per op and reason. `prefer()` changes what 'auto' means inside a `with` block, e.g. to run the fused
kernels under Triton's CPU interpreter in tests.

Fused implementations register themselves with `register()` (the package `medgan_core.ops.triton` does so the
first time a fused kernel is wanted); the reference ops call `select()`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator

import torch

IMPLS = ("auto", "ref", "triton")

# op name -> fused implementation (same signature as the reference op, without `impl`)
_FUSED: dict[str, Callable] = {}
_WARNED: set[tuple[str, str]] = set()
_LOADED = False
_AUTO_MEANS: list[str] = []  # stack of prefer() overrides for 'auto'


def register(op_name: str, fn: Callable) -> None:
    """Register the fused implementation of `op_name`."""
    _FUSED[op_name] = fn


def triton_importable() -> bool:
    """Whether `triton` can be imported (without importing it)."""
    from medgan_core.ops import triton as fused_package

    return fused_package.is_available()


def _load_fused() -> None:
    """Register the Triton implementations, once, if Triton is installed."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    if triton_importable():
        from medgan_core.ops import triton as fused_package

        fused_package.register()


def _warn_once(op_name: str, reason: str) -> None:
    if (op_name, reason) in _WARNED:
        return
    _WARNED.add((op_name, reason))
    warnings.warn(f"{op_name}: falling back to the reference implementation: {reason}", RuntimeWarning, stacklevel=3)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") in ("1", "true", "True")


@contextlib.contextmanager
def prefer(impl: str) -> Iterator[None]:
    """Inside the block, impl='auto' behaves as `impl` ('ref' or 'triton')."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _AUTO_MEANS.append(impl)
    try:
        yield
    finally:
        _AUTO_MEANS.pop()


def select(op_name: str, impl: str, x: torch.Tensor) -> Callable | None:
    """The fused implementation to call for `op_name` on tensor `x`, or None for the reference path."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto" and _AUTO_MEANS:
        impl = _AUTO_MEANS[-1]
    if impl == "ref":
        return None
    if impl == "triton":
        _load_fused()
        fn = _FUSED.get(op_name)
        if fn is None:
            raise RuntimeError(
                f"impl='triton' for {op_name}, but no Triton implementation is available: install triton "
                "(pip install 'medgan-core[gpu]') or use impl='ref'"
            )
        if not x.is_cuda and not _interpreting():
            raise RuntimeError(
                f"impl='triton' for {op_name} needs a CUDA tensor, got one on {x.device}: use impl='ref', or set "
                "TRITON_INTERPRET=1 before triton is imported to run the kernels in Triton's CPU interpreter"
            )
        return fn
    if not x.is_cuda:
        return None
    _load_fused()
    fn = _FUSED.get(op_name)
    if fn is None:
        if not triton_importable():
            _warn_once(op_name, "triton is not installed; pip install 'medgan-core[gpu]' for the fused GPU kernels")
        return None
    return fn
