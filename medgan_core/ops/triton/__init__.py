"""Fused GPU implementations of the StyleGAN2 ops, written in Triton.

`custom_ops` holds them as PyTorch custom operators (`torch.ops.medgan.bias_act`, `torch.ops.medgan.upfirdn2d`,
one Triton kernel per call plus one per derivative), so autograd, second derivatives and `torch.compile` work
through them. They take checked, normalised arguments: the public ops `medgan_core.ops.bias_act.bias_act` and
`medgan_core.ops.upfirdn2d.upfirdn2d` check what the user passed and call them where `dispatch.use_triton()`
says so. Triton is optional: this package imports without it, and `is_available()` says whether the kernels can
run. Nothing here imports the reference ops.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

__all__ = ["is_available", "use_interpreter"]

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
