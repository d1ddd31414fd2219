"""The fused bias_act (Triton) against the reference op: values, first and second derivatives.

On a machine without CUDA the kernels run in Triton's CPU interpreter; with CUDA (a lent GPU) the same grid runs
on the GPU against the reference op on the same device.
"""

from __future__ import annotations

import pytest
import torch

from medgan_core.ops import bias_act as reference
from medgan_core.ops import triton as fused

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ACTS = sorted(reference.activation_funcs)


@pytest.fixture(scope="module", autouse=True)
def kernels_runnable():
    """Triton's interpreter on CPU-only machines (tests/conftest.py sets it before triton is first imported)."""
    if DEVICE == "cpu":
        fused.use_interpreter(True)


def fused_bias_act(*args, **kwargs):
    """The public op with its Triton kernel forced."""
    return reference.bias_act(*args, impl="triton", **kwargs)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.isfinite(a).all()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def _inputs(shape, dim, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=dtype) * 2).to(DEVICE)
    b = torch.randn(shape[dim], generator=gen, dtype=dtype).to(DEVICE)
    return x, b


# shape, dim: batch 1 and more, odd sizes, channel counts that are not powers of two, an FC layer [N, C], and
# feature maps large enough for the kernel's row layout (one channel per program row, inner >= 4096 on CPU).
SHAPES = [((1, 5, 7, 9), 1), ((3, 6, 5, 3), 1), ((4, 7), 1), ((2, 3, 11), 2), ((2, 3, 64, 65), 1)]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.6])
def test_forward_and_two_derivatives_match_reference(act, clamp):
    for case, (shape, dim) in enumerate(SHAPES):
        x, b = _inputs(shape, dim, seed=case)
        x_f, b_f = x.clone().requires_grad_(), b.clone().requires_grad_()
        x_r, b_r = x.clone().requires_grad_(), b.clone().requires_grad_()
        y_f = fused_bias_act(x_f, b_f, dim=dim, act=act, clamp=clamp)
        y_r = reference.bias_act(x_r, b_r, dim=dim, act=act, clamp=clamp, impl="ref")
        assert _rel_err(y_f, y_r) < 1e-6, (shape, act, clamp)

        # First derivatives with a random output gradient, kept in the graph for the second derivatives.
        dy = torch.randn_like(y_r)
        g_f = torch.autograd.grad(y_f, [x_f, b_f], dy, create_graph=True)
        g_r = torch.autograd.grad(y_r, [x_r, b_r], dy, create_graph=True)
        for got, want in zip(g_f, g_r):
            assert _rel_err(got, want) < 1e-5, (shape, act, clamp)

        # Second derivatives, R1-style: d/d(x, b, dy) of a random projection of dx (zero where f'' is zero:
        # autograd then reports None).
        dy_f, dy_r = dy.clone().requires_grad_(), dy.clone().requires_grad_()
        y_f = fused_bias_act(x_f, b_f, dim=dim, act=act, clamp=clamp)
        y_r = reference.bias_act(x_r, b_r, dim=dim, act=act, clamp=clamp, impl="ref")
        gx_f = torch.autograd.grad(y_f, x_f, dy_f, create_graph=True)[0]
        gx_r = torch.autograd.grad(y_r, x_r, dy_r, create_graph=True)[0]
        proj = torch.randn_like(gx_r)
        h_f = torch.autograd.grad((gx_f * proj).sum(), [x_f, b_f, dy_f], allow_unused=True)
        h_r = torch.autograd.grad((gx_r * proj).sum(), [x_r, b_r, dy_r], allow_unused=True)
        for got, want, like in zip(h_f, h_r, [x, b, dy]):
            got = torch.zeros_like(like) if got is None else got
            want = torch.zeros_like(like) if want is None else want
            if want.norm() == 0:
                assert got.norm() == 0, (shape, act, clamp)
            else:
                assert _rel_err(got, want) < 1e-4, (shape, act, clamp)


@pytest.mark.parametrize("act", ["lrelu", "swish"])
def test_no_bias_custom_alpha_gain_and_channels_last(act):
    x, b = _inputs((2, 6, 5, 7), 1, seed=11)
    x = x.contiguous(memory_format=torch.channels_last)
    for bias in (None, b):
        got = fused_bias_act(x, bias, act=act, alpha=0.3, gain=0.7, clamp=1.5)
        want = reference.bias_act(x, bias, act=act, alpha=0.3, gain=0.7, clamp=1.5, impl="ref")
        assert _rel_err(got, want) < 1e-6
    # A non-contiguous (transposed) view goes through a copy and still matches.
    xt = x.transpose(2, 3)
    assert _rel_err(fused_bias_act(xt, b, act=act), reference.bias_act(xt, b, act=act, impl="ref")) < 1e-6


def test_gradcheck_float64_against_finite_differences():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64, generator=gen).to(DEVICE).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, generator=gen).to(DEVICE).requires_grad_()
    for act in ("swish", "tanh", "elu"):
        fn = lambda x, b, act=act: fused_bias_act(x, b, act=act)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x, b), fast_mode=True)


def test_bad_arguments_are_reported():
    x, b = _inputs((2, 3, 4, 4), 1, seed=0)
    with pytest.raises(ValueError, match="unknown activation"):
        fused_bias_act(x, b, act="gelu")
    with pytest.raises(ValueError, match="does not match"):
        fused_bias_act(x, b[:2])
    with pytest.raises(ValueError, match="clamp"):
        fused_bias_act(x, b, clamp=-1)
