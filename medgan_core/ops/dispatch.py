"""Choosing an implementation for each op: the pure-PyTorch reference or a fused kernel.

`impl` is one of 'auto', 'ref' or 'triton'. 'ref' always uses the reference code; 'triton' requires the fused
kernel; 'auto' uses the fused kernel for CUDA tensors when one is registered and usable, the reference otherwise.
Fused implementations register themselves with `register()`; the reference ops call `select()`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

IMPLS = ("auto", "ref", "triton")

# op name -> fused implementation (same signature as the reference op, without `impl`)
_FUSED: dict[str, Callable] = {}


def register(op_name: str, fn: Callable) -> None:
    """Register the fused implementation of `op_name`."""
    _FUSED[op_name] = fn


def select(op_name: str, impl: str, x: torch.Tensor) -> Callable | None:
    """The fused implementation to call for `op_name` on tensor `x`, or None for the reference path."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "ref":
        return None
    fn = _FUSED.get(op_name)
    if impl == "triton":
        if fn is None:
            raise RuntimeError(f"no Triton implementation of {op_name} is available (is triton installed?)")
        return fn
    if fn is not None and x.is_cuda:
        return fn
    return None
