"""The fused upfirdn2d (Triton) against the reference op: values, gradients and double backward.

On a machine without CUDA the kernel runs in Triton's CPU interpreter; with CUDA the same grid runs on the GPU.
"""

from __future__ import annotations

import pytest
import torch

from medgan_core.ops import triton as fused
from medgan_core.ops import upfirdn2d as reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module", autouse=True)
def kernels_runnable():
    """Triton's interpreter on CPU-only machines (tests/conftest.py sets it before triton is first imported)."""
    if DEVICE == "cpu":
        fused.use_interpreter(True)


def fused_upfirdn2d(*args, **kwargs):
    """The public op with its Triton kernel forced."""
    return reference.upfirdn2d(*args, impl="triton", **kwargs)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.isfinite(a).all()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


FILTERS = {
    "4tap_2d": lambda: reference.setup_filter([1, 3, 3, 1]),  # StyleGAN2's resample filter, as the networks use it
    "4tap_separable": lambda: reference.setup_filter([1, 3, 3, 1], separable=True),
    "3x2_asymmetric": lambda: reference.setup_filter([[1.0, -2.0], [3.0, 0.5], [0.25, 1.0]], normalize=False),
    "8tap_separable": lambda: reference.setup_filter([1, 2, 3, 4, 4, 3, 2, 1]),  # 8 taps: separable by default
    "identity": lambda: None,
}

# (shape [N, C, H, W], filter, up, down, padding, flip_filter, gain)
CASES = [
    ((1, 3, 5, 7), "4tap_2d", 2, 1, (2, 1), False, 4.0),  # upsample2d's padding
    ((2, 5, 6, 6), "4tap_2d", 1, 2, 1, False, 1.0),  # downsample2d's padding
    ((3, 2, 7, 5), "4tap_2d", 1, 1, (2, 1), True, 1.0),  # filter2d
    ((1, 3, 5, 7), "4tap_separable", 2, 1, (2, 1, 1, 2), False, 4.0),
    ((2, 3, 9, 8), "4tap_separable", 1, 2, (1, 1, 2, 0), True, 1.0),
    ((1, 6, 4, 5), "4tap_separable", 2, 2, 1, False, 1.5),
    ((2, 3, 5, 6), "3x2_asymmetric", 1, 1, (0, 0, 0, 0), False, 1.0),
    ((1, 3, 5, 6), "3x2_asymmetric", (2, 1), (1, 2), (1, 2, 3, 0), True, 0.7),
    ((2, 1, 7, 7), "3x2_asymmetric", 3, 2, (-1, 2, 2, -2), False, 1.0),  # negative padding crops
    ((1, 3, 6, 5), "8tap_separable", 2, 1, (4, 3), False, 4.0),
    ((2, 3, 5, 4), "identity", 2, 1, (0, 1, 1, 0), False, 1.0),
    ((2, 3, 9, 7), "identity", 1, 2, 0, False, 2.0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-up{c[2]}-down{c[3]}-pad{c[4]}" for c in CASES])
def test_forward_gradient_and_double_backward_match_reference(case):
    shape, filter_name, up, down, padding, flip_filter, gain = case
    gen = torch.Generator().manual_seed(len(shape) + sum(shape))
    x = torch.randn(shape, generator=gen).to(DEVICE)
    f = FILTERS[filter_name]()
    f = f.to(DEVICE) if f is not None else None
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)

    x_f, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_f = fused_upfirdn2d(x_f, f, **kwargs)
    y_r = reference.upfirdn2d(x_r, f, impl="ref", **kwargs)
    assert _rel_err(y_f, y_r) < 1e-6

    # Gradient w.r.t. x, kept in the graph; then the gradient of a projection of it w.r.t. the output gradient
    # (the double backward path-length and R1 regularization take through resampling layers).
    dy_f = torch.randn(y_r.shape, generator=gen).to(DEVICE).requires_grad_()
    dy_r = dy_f.detach().clone().requires_grad_()
    dx_f = torch.autograd.grad(y_f, x_f, dy_f, create_graph=True)[0]
    dx_r = torch.autograd.grad(y_r, x_r, dy_r, create_graph=True)[0]
    assert _rel_err(dx_f, dx_r) < 1e-6
    proj = torch.randn(x.shape, generator=gen).to(DEVICE)
    ddy_f = torch.autograd.grad((dx_f * proj).sum(), dy_f)[0]
    ddy_r = torch.autograd.grad((dx_r * proj).sum(), dy_r)[0]
    assert _rel_err(ddy_f, ddy_r) < 1e-6


def test_resampling_wrappers_route_through_dispatch_to_the_kernel():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 5, generator=gen).to(DEVICE)
    f = reference.setup_filter([1, 3, 3, 1], device=DEVICE)
    for wrapper in (reference.upsample2d, reference.downsample2d, reference.filter2d):
        got = wrapper(x, f, impl="triton")
        want = wrapper(x, f, impl="ref")
        assert _rel_err(got, want) < 1e-6, wrapper.__name__


def test_channels_last_input_and_float64():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, 6, 5, 7, generator=gen).to(DEVICE).contiguous(memory_format=torch.channels_last)
    f = reference.setup_filter([1, 3, 3, 1], device=DEVICE)
    got = fused_upfirdn2d(x, f, up=2, padding=(2, 1), gain=4)
    assert _rel_err(got, reference.upfirdn2d(x, f, up=2, padding=(2, 1), gain=4, impl="ref")) < 1e-6
    x64 = x.double().contiguous()
    got = fused_upfirdn2d(x64, f, down=2, padding=1)
    assert got.dtype == torch.float64
    assert _rel_err(got, reference.upfirdn2d(x64, f, down=2, padding=1, impl="ref")) < 1e-12


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, generator=gen).to(DEVICE).requires_grad_()
    f = reference.setup_filter([1, 3, 3, 1], device=DEVICE)
    fn = lambda x: fused_upfirdn2d(x, f, up=2, down=1, padding=(2, 1, 1, 2), gain=4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_filter_requiring_grad_uses_the_reference_and_bad_sizes_are_reported():
    x = torch.randn(1, 2, 5, 5).to(DEVICE)
    f = reference.setup_filter([1, 3, 3, 1], device=DEVICE).requires_grad_()
    y = fused_upfirdn2d(x, f, padding=1)
    (grad_f,) = torch.autograd.grad(y.sum(), f)
    assert grad_f.shape == f.shape
    with pytest.raises(ValueError, match="smaller than the filter"):
        fused_upfirdn2d(torch.randn(1, 1, 2, 2).to(DEVICE), f.detach(), padding=0)
