"""torch.compile traces networks through the fused custom ops (fake kernels, autograd) and matches eager.

Without a GPU the custom ops run their kernels in Triton's CPU interpreter. The generator is compiled with the
'aot_eager' backend (Dynamo and AOTAutograd, which need the fake kernels and the autograd registration; fullgraph
proves the ops cause no graph break); a small op chain also goes through Inductor's code generation.
"""

from __future__ import annotations

import pytest
import torch

from medgan_core.ops import bias_act, dispatch, upfirdn2d
from medgan_core.ops import triton as fused

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module", autouse=True)
def kernels_runnable():
    if DEVICE == "cpu":
        fused.use_interpreter(True)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_generator_matches_eager_forward_and_backward():
    from medgan_core.networks import Generator

    torch.manual_seed(0)
    G = Generator(
        z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=1, mapping_kwargs=dict(num_layers=2),
        channel_base=64, channel_max=16, num_fp16_res=0, conv_clamp=256,
    ).to(DEVICE)  # fmt: skip
    z = torch.randn(2, 8, device=DEVICE, requires_grad=True)
    c = torch.zeros(2, 0, device=DEVICE)
    with dispatch.prefer("triton"):
        eager = G(z, c, noise_mode="const")
        (grad_eager,) = torch.autograd.grad(eager.square().sum(), z)
        compiled_G = torch.compile(G, backend="aot_eager", fullgraph=True)
        compiled = compiled_G(z, c, noise_mode="const")
        (grad_compiled,) = torch.autograd.grad(compiled.square().sum(), z)
    assert _graph_has_custom_op(eager)  # the fused path really ran
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_compiled, grad_eager, rtol=1e-4, atol=1e-4)


def _graph_has_custom_op(t: torch.Tensor) -> bool:
    """Whether the autograd graph behind `t` contains one of the medgan custom ops."""
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "medgan" in node.name():
            return True
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return False


def test_inductor_compiles_a_chain_of_custom_ops():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 5, generator=gen).to(DEVICE)
    b = torch.randn(3, generator=gen).to(DEVICE)
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE)

    def chain(x):
        y = bias_act.bias_act(x * 2, b, act="lrelu", clamp=1.0, impl="triton")
        return upfirdn2d.upsample2d(y, f, impl="triton").tanh()

    eager = chain(x)
    compiled = torch.compile(chain, backend="inductor", fullgraph=True)(x)
    reference = upfirdn2d.upsample2d(bias_act.bias_act(x * 2, b, act="lrelu", clamp=1.0, impl="ref"), f,
                                     impl="ref").tanh()  # fmt: skip
    torch.testing.assert_close(eager, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
