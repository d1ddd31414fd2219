"""Triton kernel for bias + activation + gain + clamp, and its first and second derivatives.

One element-wise pass over a dense tensor `x` of any shape; the bias runs along one dimension whose stride in
memory is `inner` (so NCHW and channels-last layouts both work). Two ways to find each element's channel:
ROW_MODE (inner >= one block, e.g. NCHW feature maps): the grid is (rows = numel / inner, blocks of a row), so
the channel is `row % C`, one scalar per program; otherwise `channel = (offset // inner) % C` per element, in
32-bit arithmetic unless INDEX_64 (64-bit integer division is slow on GPUs).

Modes (compile-time):
    0  forward:        out = clamp(f(s) * gain),                  s = x + b
    1  first grad:     out = g * f'(s) * gain * [|f(s) * gain| <= clamp]
    2  second grad:    out = g * dy * f''(s) * gain * [|f(s) * gain| <= clamp]
where `g` is the incoming gradient and `dy` the gradient the first-grad pass was given. The clamp mask is
recomputed rather than read from the forward output, so the output may be modified in place afterwards
(as the networks' residual additions do); it is inclusive like torch.clamp's gradient.

Importing this module imports triton: set TRITON_INTERPRET=1 before the first import of triton to run the kernels
on CPU tensors.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Activation codes shared with the host code (the order of NVIDIA's table, from 1).
ACT_CODES = {
    "linear": 1,
    "relu": 2,
    "lrelu": 3,
    "tanh": 4,
    "sigmoid": 5,
    "elu": 6,
    "selu": 7,
    "softplus": 8,
    "swish": 9,
}

SELU_SCALE = tl.constexpr(1.0507009873554804934193349852946)
SELU_ALPHA = tl.constexpr(1.6732632423543772848170429916717)
SOFTPLUS_THRESHOLD = tl.constexpr(20.0)  # torch.nn.functional.softplus: linear above this


@triton.jit
def _sigmoid(s):
    return 1.0 / (1.0 + tl.exp(-s))


@triton.jit
def _act_value(s, alpha, ACT: tl.constexpr):
    """f(s)."""
    if ACT == 1:
        r = s
    elif ACT == 2:
        r = tl.where(s > 0, s, 0.0)
    elif ACT == 3:
        r = tl.where(s > 0, s, s * alpha)
    elif ACT == 4:
        e = tl.exp(-2.0 * tl.abs(s))
        r = (1.0 - e) / (1.0 + e)
        r = tl.where(s < 0, -r, r)
    elif ACT == 5:
        r = _sigmoid(s)
    elif ACT == 6:
        r = tl.where(s > 0, s, tl.exp(tl.minimum(s, 0.0)) - 1.0)
    elif ACT == 7:
        r = tl.where(s > 0, SELU_SCALE * s, (SELU_SCALE * SELU_ALPHA) * (tl.exp(tl.minimum(s, 0.0)) - 1.0))
    elif ACT == 8:
        r = tl.where(s > SOFTPLUS_THRESHOLD, s, tl.log(1.0 + tl.exp(tl.minimum(s, SOFTPLUS_THRESHOLD))))
    else:
        r = s * _sigmoid(s)
    return r


@triton.jit
def _act_deriv1(s, alpha, ACT: tl.constexpr):
    """f'(s)."""
    if ACT == 1:
        r = s * 0.0 + 1.0
    elif ACT == 2:
        r = tl.where(s > 0, 1.0, 0.0)
    elif ACT == 3:
        r = tl.where(s > 0, 1.0, alpha)
    elif ACT == 4:
        t = _act_value(s, alpha, 4)
        r = 1.0 - t * t
    elif ACT == 5:
        sig = _sigmoid(s)
        r = sig * (1.0 - sig)
    elif ACT == 6:
        r = tl.where(s > 0, 1.0, tl.exp(tl.minimum(s, 0.0)))
    elif ACT == 7:
        r = tl.where(s > 0, SELU_SCALE, (SELU_SCALE * SELU_ALPHA) * tl.exp(tl.minimum(s, 0.0)))
    elif ACT == 8:
        r = tl.where(s > SOFTPLUS_THRESHOLD, 1.0, _sigmoid(s))
    else:
        sig = _sigmoid(s)
        r = sig * (1.0 + s * (1.0 - sig))
    return r


@triton.jit
def _act_deriv2(s, alpha, ACT: tl.constexpr):
    """f''(s) (zero for the piecewise-linear activations)."""
    if ACT == 4:
        t = _act_value(s, alpha, 4)
        r = -2.0 * t * (1.0 - t * t)
    elif ACT == 5:
        sig = _sigmoid(s)
        r = sig * (1.0 - sig) * (1.0 - 2.0 * sig)
    elif ACT == 6:
        r = tl.where(s > 0, 0.0, tl.exp(tl.minimum(s, 0.0)))
    elif ACT == 7:
        r = tl.where(s > 0, 0.0, (SELU_SCALE * SELU_ALPHA) * tl.exp(tl.minimum(s, 0.0)))
    elif ACT == 8:
        sig = _sigmoid(s)
        r = tl.where(s > SOFTPLUS_THRESHOLD, 0.0, sig * (1.0 - sig))
    elif ACT == 9:
        sig = _sigmoid(s)
        r = sig * (1.0 - sig) * (2.0 + s * (1.0 - 2.0 * sig))
    else:
        r = s * 0.0
    return r


@triton.jit
def bias_act_kernel(
    x_ptr,  # [numel] input before the bias
    b_ptr,  # [C] bias (unused without HAS_BIAS)
    g_ptr,  # [numel] incoming gradient (modes 1, 2)
    dy_ptr,  # [numel] gradient given to the first-grad pass (mode 2)
    out_ptr,  # [numel] result
    numel,
    num_channels,
    inner,  # memory stride of the bias dimension
    alpha,
    gain,
    clamp,
    MODE: tl.constexpr,
    ACT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr,
    ROW_MODE: tl.constexpr,
    INDEX_64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    compute_dtype = b_ptr.dtype.element_ty  # float32, or float64 for float64 inputs
    if ROW_MODE:
        row = tl.program_id(0)
        col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = col < inner
        offs = row.to(tl.int64) * inner + col
        s = tl.load(x_ptr + offs, mask=inside, other=0.0).to(compute_dtype)
        if HAS_BIAS:
            s += tl.load(b_ptr + row % num_channels)
    else:
        if INDEX_64:
            offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        else:
            offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < numel
        s = tl.load(x_ptr + offs, mask=inside, other=0.0).to(compute_dtype)
        if HAS_BIAS:
            channel = (offs // inner) % num_channels
            s += tl.load(b_ptr + channel, mask=inside, other=0.0)
    if MODE == 0:
        r = _act_value(s, alpha, ACT) * gain
        if HAS_CLAMP:
            r = tl.minimum(tl.maximum(r, -clamp), clamp)
    else:
        g = tl.load(g_ptr + offs, mask=inside, other=0.0).to(compute_dtype)
        if MODE == 1:
            r = g * _act_deriv1(s, alpha, ACT) * gain
        else:
            dy = tl.load(dy_ptr + offs, mask=inside, other=0.0).to(compute_dtype)
            r = g * dy * _act_deriv2(s, alpha, ACT) * gain
        if HAS_CLAMP:
            r = tl.where(tl.abs(_act_value(s, alpha, ACT) * gain) <= clamp, r, 0.0)
    tl.store(out_ptr + offs, r.to(out_ptr.dtype.element_ty), mask=inside)
