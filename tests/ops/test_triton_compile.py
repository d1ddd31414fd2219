"""Every Triton kernel, at the configurations the networks launch, compiles to cubin for sm_80 and sm_90.

No GPU needed: Triton's own compiler with an explicit target (and the ptxas Triton ships) turns each kernel into
machine code for the A100 (the paper's DGX) and the H100. This catches constructs only the interpreter accepts.
The configurations are recorded from a tiny generator and discriminator running forward, backward, R1 and
path-length double backward through the fused ops (under the interpreter, or on the GPU when there is one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from medgan_core.ops import dispatch
from medgan_core.ops import triton as fused
from medgan_core.ops.triton import custom_ops, launch_config

pytest.importorskip("triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The element-wise and resampling shapes of a 512x512 training batch (8 images x 128 channels at 512^2).
LARGE_PLANES, LARGE_Q = 8 * 128, 256


def _record_network_launches() -> set:
    from medgan_core.networks import Discriminator, Generator

    torch.manual_seed(0)
    kwargs = dict(img_resolution=8, img_channels=1, channel_base=32, channel_max=8, num_fp16_res=0, conv_clamp=256)
    G = Generator(z_dim=4, c_dim=0, w_dim=4, mapping_kwargs=dict(num_layers=2), **kwargs).to(DEVICE)
    D = Discriminator(c_dim=0, epilogue_kwargs=dict(mbstd_group_size=2), **kwargs).to(DEVICE)
    z, c = torch.randn(2, 4, device=DEVICE), torch.zeros(2, 0, device=DEVICE)
    with dispatch.prefer("triton"), custom_ops.record_launches() as records:
        ws = G.mapping(z, c).detach().requires_grad_()
        img = G.synthesis(ws, noise_mode="const")
        real = torch.randn_like(img).requires_grad_()
        (grad_real,) = torch.autograd.grad(D(real, c).sum(), real, create_graph=True)  # R1
        (grad_ws,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)  # path length
        (grad_real.square().sum() + grad_ws.square().sum() + D(img, c).sum()).backward()
    return records


@pytest.fixture(scope="module")
def network_launches():
    if DEVICE == "cpu":
        fused.use_interpreter(True)
    return _record_network_launches()


def _with_large_blocks(record):
    """The same launch at the 512x512 training shapes (block sizes depend on the image size)."""
    name, types, constexprs, _ = record
    constexprs = dict(constexprs)
    if name == "upfirdn2d_kernel":
        blocks = launch_config.upfirdn2d(LARGE_PLANES, LARGE_Q, LARGE_Q, True)
        constexprs.update(BLOCK_NC=blocks[0], BLOCK_QY=blocks[1], BLOCK_QX=blocks[2])
        num_warps = blocks[3]
    else:
        inner = (2 * LARGE_Q) ** 2  # NCHW feature maps at 512x512: one row per channel
        row_mode, constexprs["BLOCK"], num_warps = launch_config.bias_act(LARGE_PLANES * inner, inner, True)
        constexprs["ROW_MODE"] = row_mode
    return name, types, tuple(sorted(constexprs.items())), num_warps


def _as_float16(record):
    """The same launch on float16 activations (the networks' mixed-precision layers)."""
    name, types, constexprs, num_warps = record
    activations = ("x_ptr", "g_ptr", "dy_ptr", "out_ptr")
    types = tuple((k, "*fp16" if k in activations else v) for k, v in types)
    return name, types, constexprs, num_warps


def _compile_in_subprocess(launches: list) -> list[dict]:
    """Compile [(record, capability), ...] with Triton's real compiler, in a process that did not import triton in
    interpreter mode."""
    payload = [[name, list(types), list(constexprs), num_warps, cap] for (name, types, constexprs, num_warps), cap
               in launches]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-m", "medgan_core.ops.triton.compile_check"],
        input=json.dumps(payload), capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout)
    assert len(results) == len(launches)
    return results


def test_networks_launch_every_kernel_kind(network_launches):
    """The recording sees forward, first-derivative, up, down and plain-filter launches (and the large-shape
    variants below add the row layout of bias_act)."""
    kinds = {
        (r[0], dict(r[2]).get("MODE"), dict(r[2]).get("UP_X"), dict(r[2]).get("DOWN_X")) for r in network_launches
    }
    assert ("bias_act_kernel", 0, None, None) in kinds and ("bias_act_kernel", 1, None, None) in kinds
    assert ("upfirdn2d_kernel", None, 2, 1) in kinds and ("upfirdn2d_kernel", None, 1, 2) in kinds
    assert ("upfirdn2d_kernel", None, 1, 1) in kinds


@pytest.mark.slow
def test_every_network_launch_compiles_to_cubin(network_launches):
    """sm_90 (H100): every recorded launch, at the test's sizes and at 512x512 sizes. sm_80 (A100): the 512x512
    launches in float32 and float16 (small sizes differ only in block sizes, which sm_90 covers)."""
    large = {_with_large_blocks(r) for r in network_launches}
    launches = [(r, 90) for r in sorted(set(network_launches) | large, key=repr)]
    launches += [(r, 80) for r in sorted(large | {_as_float16(r) for r in large}, key=repr)]
    for (record, capability), result in zip(launches, _compile_in_subprocess(launches)):
        assert result["cubin_is_elf"] and result["cubin_bytes"] > 1000, record
        assert result["ptx_target"] in (f"sm_{capability}", f"sm_{capability}a"), record
        assert result["num_warps"] == record[3], record


def test_second_derivative_kernels_of_smooth_activations_compile():
    """Mode 2 (the second derivative) never runs for lrelu; compile it for the smooth activations."""
    from medgan_core.ops.triton.bias_act_kernels import ACT_CODES

    types = tuple(
        (k, "*fp32") for k in ("x_ptr", "b_ptr", "g_ptr", "dy_ptr", "out_ptr")
    ) + (("numel", "i32"), ("num_channels", "i32"), ("inner", "i32"), ("alpha", "fp32"), ("gain", "fp32"),
         ("clamp", "fp32"))  # fmt: skip
    launches = []
    for act in ("tanh", "sigmoid", "elu", "selu", "softplus", "swish"):
        constexprs = (("ACT", ACT_CODES[act]), ("BLOCK", 1024), ("HAS_BIAS", True), ("HAS_CLAMP", True),
                      ("INDEX_64", False), ("MODE", 2), ("ROW_MODE", True))  # fmt: skip
        launches.append((("bias_act_kernel", types, constexprs, 4), 90))
    for result in _compile_in_subprocess(launches):
        assert result["cubin_is_elf"] and result["ptx_target"] in ("sm_90", "sm_90a")
