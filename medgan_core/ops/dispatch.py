"""Which implementation an op runs: the pure-PyTorch reference or its fused Triton kernel.

`impl` is one of 'auto', 'ref' or 'triton'. 'ref' always runs the reference code; 'triton' requires the fused
kernel (an error naming the fix when it cannot run); 'auto' runs the fused kernel for CUDA tensors when Triton is
installed, the reference otherwise. Falling back for a reason the user can fix (a CUDA tensor but no Triton)
warns once per op. `prefer()` changes what 'auto' means inside a `with` block, e.g. to run the fused kernels
under Triton's CPU interpreter in tests.

Each public op (`bias_act.bias_act`, `upfirdn2d.upfirdn2d`) checks its arguments, asks `use_triton()` and then
calls either its reference code or `medgan_core.ops.triton.custom_ops`. Nothing registers itself anywhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import warnings
from collections.abc import Iterator

import torch

from medgan_core.ops import triton as fused

IMPLS = ("auto", "ref", "triton")

# What impl='auto' means right now: 'auto' (the device rule), or what the innermost prefer() block asked for.
_AUTO_MEANS = contextvars.ContextVar("medgan_ops_auto_means", default="auto")


@contextlib.contextmanager
def prefer(impl: str) -> Iterator[None]:
    """Inside the block, impl='auto' behaves as `impl` ('ref' or 'triton')."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    token = _AUTO_MEANS.set(impl)
    try:
        yield
    finally:
        _AUTO_MEANS.reset(token)


def interpreting() -> bool:
    """Whether TRITON_INTERPRET asks for Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") in ("1", "true", "True")


@functools.cache
def _warn_no_triton(op_name: str) -> None:
    warnings.warn(
        f"{op_name}: falling back to the reference implementation: triton is not installed; "
        "pip install 'medgan-core[gpu]' for the fused GPU kernels",
        RuntimeWarning,
        stacklevel=4,
    )


def use_triton(op_name: str, impl: str, x: torch.Tensor) -> bool:
    """Whether `op_name` on tensor `x` runs its Triton kernel (True) or the reference code (False)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = _AUTO_MEANS.get()
    if impl == "ref":
        return False
    if impl == "triton":
        if not fused.is_available():
            raise RuntimeError(
                f"impl='triton' for {op_name}, but no Triton implementation is available: install triton "
                "(pip install 'medgan-core[gpu]') or use impl='ref'"
            )
        if not x.is_cuda and not interpreting():
            raise RuntimeError(
                f"impl='triton' for {op_name} needs a CUDA tensor, got one on {x.device}: use impl='ref', or set "
                "TRITON_INTERPRET=1 before triton is imported to run the kernels in Triton's CPU interpreter"
            )
        return True
    if not x.is_cuda:
        return False
    if not fused.is_available():
        _warn_no_triton(op_name)
        return False
    return True
