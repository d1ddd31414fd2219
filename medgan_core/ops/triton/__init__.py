"""Fused GPU implementations of the StyleGAN2 ops, written in Triton.

`bias_act()` and `upfirdn2d()` here take the reference ops' arguments (without `impl`) and run one Triton kernel
per call (plus one per derivative); `medgan_core.ops.dispatch` routes the reference ops here for CUDA tensors.
They are registered as PyTorch custom operators (`torch.ops.medgan.*`, see `custom_ops`), so autograd, second
derivatives and `torch.compile` work through them. Triton is optional: this package imports without it, and
`is_available()` says whether the kernels can run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import torch

__all__ = ["bias_act", "upfirdn2d", "is_available", "register", "use_interpreter"]

KERNEL_MODULES = ("bias_act_kernels", "upfirdn2d_kernels")


def is_available() -> bool:
    """Whether the `triton` package is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules['triton'] is None (import blocked)
        return False


def use_interpreter(enabled: bool = True) -> None:
    """Run the kernels in Triton's CPU interpreter (on CPU tensors) from now on, or stop doing so.

    Sets TRITON_INTERPRET and re-creates kernels that were already made the other way. Triton builds its own
    language functions when it is first imported, so the switch must be on before that (torch._dynamo imports
    triton): set TRITON_INTERPRET=1 in the environment or a conftest, and this call only confirms it. For tests and
    debugging without a GPU; the interpreter is slow, so keep tensors small.
    """
    if enabled:
        os.environ["TRITON_INTERPRET"] = "1"
        language = sys.modules.get("triton.language")
        if language is not None and type(getattr(language, "zeros", None)).__name__ == "JITFunction":
            raise RuntimeError(
                "triton was imported before TRITON_INTERPRET=1 was set, so its interpreter cannot be used in this "
                "process: set TRITON_INTERPRET=1 in the environment (or a conftest) before anything imports triton"
            )
    else:
        os.environ.pop("TRITON_INTERPRET", None)
    for name in KERNEL_MODULES:
        module = sys.modules.get(f"{__name__}.{name}")
        if module is not None:
            importlib.reload(module)


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """Fused `medgan_core.ops.bias_act.bias_act` (same arguments and result, one kernel pass)."""
    from medgan_core.ops.bias_act import activation_funcs
    from medgan_core.ops.triton import custom_ops

    if act not in activation_funcs:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(activation_funcs)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be non-negative or None, got {clamp}")
    if not x.is_floating_point():
        raise TypeError(f"bias_act needs a floating-point tensor, got {x.dtype}")
    if b is not None and (b.ndim != 1 or not 0 <= dim < x.ndim or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias of shape {tuple(b.shape)} does not match dim {dim} of x {tuple(x.shape)}")
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp) if clamp is not None else -1.0
    return custom_ops.bias_act(x, b, dim, act, alpha, gain, clamp)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Fused `medgan_core.ops.upfirdn2d.upfirdn2d` (same arguments and result, one kernel pass).

    A filter that requires grad goes to the reference implementation (the kernel has no filter gradient).
    """
    from medgan_core.ops import upfirdn2d as reference
    from medgan_core.ops.triton import custom_ops

    if x.ndim != 4:
        raise ValueError(f"x must have shape [N, C, H, W], got {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.requires_grad:
        return reference._upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    upx, upy = reference._parse_scaling(up)
    downx, downy = reference._parse_scaling(down)
    padx0, padx1, pady0, pady1 = reference._parse_padding(padding)
    fw, fh = reference._get_filter_size(f)
    if x.shape[3] * upx + padx0 + padx1 < fw or x.shape[2] * upy + pady0 + pady1 < fh:
        raise ValueError(f"padded image {tuple(x.shape)} (up {up}, padding {padding}) is smaller than the filter")
    return custom_ops.upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, bool(flip_filter), gain)


def register() -> None:
    """Register the fused implementations with `medgan_core.ops.dispatch`."""
    from medgan_core.ops import dispatch

    dispatch.register("bias_act", bias_act)
    dispatch.register("upfirdn2d", upfirdn2d)
