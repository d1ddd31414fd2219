"""Compile the Triton kernels to GPU machine code without a GPU, for explicit targets (sm_80, sm_90, ...).

Triton's own compiler lowers each kernel through TTIR, TTGIR, LLVM IR and PTX to cubin with the ptxas it ships,
so this catches constructs that only the interpreter accepts. It must run in a process where Triton was imported
without TRITON_INTERPRET (the interpreter replaces the kernels), hence the command-line form:

    python -m medgan_core.ops.triton.compile_check < launches.json > results.json

The input is a JSON list of launches `[kernel_name, [[arg, type], ...], [[constexpr, value], ...], num_warps,
capability]` (as `custom_ops.record_launches()` records them, plus a compute capability); the output lists, per
launch, the cubin's size, the PTX target and the warps the compiled kernel uses.
"""

from __future__ import annotations

import json
import sys


def compile_launch(kernel_name: str, types, constexprs, num_warps: int, capability: int) -> dict:
    """Compile one recorded launch for `sm_<capability>` and describe the result."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from medgan_core.ops.triton import bias_act_kernels, upfirdn2d_kernels

    module = bias_act_kernels if kernel_name == "bias_act_kernel" else upfirdn2d_kernels
    kernel = getattr(module, kernel_name)
    signature = dict((k, v) for k, v in types)
    signature.update({k: "constexpr" for k, _ in constexprs})
    source = ASTSource(fn=kernel, signature=signature, constexprs={k: v for k, v in constexprs})
    compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32), options=dict(num_warps=num_warps))
    cubin = compiled.asm["cubin"]
    ptx_target = next((line.split()[1] for line in compiled.asm["ptx"].splitlines() if line.startswith(".target")), "")
    return dict(
        kernel=kernel_name,
        capability=capability,
        cubin_bytes=len(cubin),
        cubin_is_elf=cubin[:4] == b"\x7fELF",
        ptx_target=ptx_target,
        num_warps=compiled.metadata.num_warps,
    )


def main() -> int:
    launches = json.load(sys.stdin)
    results = [compile_launch(*launch) for launch in launches]
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
