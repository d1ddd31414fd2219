"""The fused ops as PyTorch custom operators (`torch.ops.medgan.*`), so autograd and `torch.compile` see them.

Each op launches a Triton kernel on CUDA tensors, or on CPU tensors under the Triton interpreter
(TRITON_INTERPRET=1 set before the kernels are first imported). Fake implementations give `torch.compile` the
output shapes without running a kernel; the registered backward passes are built from the same custom ops, so
second derivatives (R1, path-length regularization) also run fused:

    medgan::bias_act          y  = clamp(f(x + b) * gain)
    medgan::bias_act_grad     dx = dy * f'(x + b) * gain * [not clamped]        (differentiable again)
    medgan::bias_act_grad2    the derivative of bias_act_grad w.r.t. x           (no third derivative)
    medgan::upfirdn2d         upsample, pad, filter, downsample; its gradient is upfirdn2d again

`clamp < 0` means no clamp (NVIDIA's convention). The kernel modules are imported on first launch, not here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from medgan_core.ops.triton import launch_config

Tensor = torch.Tensor


def _kernels(name: str):
    """Import a kernel module on first use (so TRITON_INTERPRET set by a test still takes effect)."""
    if name == "bias_act":
        from medgan_core.ops.triton import bias_act_kernels as module
    else:
        from medgan_core.ops.triton import upfirdn2d_kernels as module
    return module


def _check_device(x: Tensor) -> None:
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET", "0") not in ("1", "true", "True"):
        raise RuntimeError(
            f"the Triton kernels need CUDA tensors, got a tensor on {x.device}: use impl='ref' on CPU, or set "
            "TRITON_INTERPRET=1 before importing triton to run them in Triton's interpreter"
        )


def _dense(x: Tensor) -> Tensor:
    """`x` in a dense memory layout the element-wise kernel can walk (NCHW or channels-last)."""
    if x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return x
    return x.contiguous()


def _like(t: Tensor, ref: Tensor) -> Tensor:
    """`t` with exactly the strides of the dense tensor `ref` (a copy only when they differ)."""
    if t.shape == ref.shape and t.stride() == ref.stride():
        return t
    out = torch.empty_like(ref, dtype=t.dtype)
    out.copy_(t)
    return out


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _launch_bias_act(mode, x, b, g, dy, dim, act, alpha, gain, clamp) -> Tensor:
    _check_device(x)
    kernels = _kernels("bias_act")
    x = _dense(x)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    compute = _compute_dtype(x)
    bias = b.to(compute).contiguous() if b is not None else torch.zeros(1, dtype=compute, device=x.device)
    g = _like(g, x) if g is not None else x
    dy = _like(dy, x) if dy is not None else x
    num_channels = x.shape[dim] if x.ndim else 1
    inner = x.stride(dim) if x.ndim else 1
    args = dict(
        x_ptr=x, b_ptr=bias, g_ptr=g, dy_ptr=dy, out_ptr=out, numel=x.numel(), num_channels=num_channels,
        inner=inner, alpha=float(alpha), gain=float(gain), clamp=float(clamp),
    )  # fmt: skip
    constexprs = dict(
        MODE=mode, ACT=kernels.ACT_CODES[act], HAS_BIAS=b is not None, HAS_CLAMP=clamp >= 0,
        INDEX_64=x.numel() >= 2**31 - 2**20,
    )  # fmt: skip
    gpu_row_mode, gpu_block, gpu_warps = launch_config.bias_act(x.numel(), inner, True)
    _record("bias_act_kernel", args, dict(constexprs, ROW_MODE=gpu_row_mode, BLOCK=gpu_block), gpu_warps)
    row_mode, block, num_warps = launch_config.bias_act(x.numel(), inner, x.is_cuda)
    if row_mode:
        grid = (x.numel() // inner, triton_cdiv(inner, block))
    else:
        grid = (triton_cdiv(x.numel(), block),)
    _launch(kernels.bias_act_kernel, grid, args, dict(constexprs, ROW_MODE=row_mode, BLOCK=block), num_warps)
    return out


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _block_kwargs(blocks: tuple[int, int, int, int]) -> dict:
    return dict(BLOCK_NC=blocks[0], BLOCK_QY=blocks[1], BLOCK_QX=blocks[2])


def _launch(kernel, grid, args: dict, constexprs: dict, num_warps: int) -> None:
    with _device_guard(args["x_ptr"]):
        kernel[grid](**args, **constexprs, num_warps=num_warps)


# Launch recording: what the networks launch, for compiling every configuration ahead of time (see
# `record_launches`). Each entry is (kernel name, {arg: Triton type}, {constexpr: value}, num_warps) as a GPU
# launch of the same call would use.
_RECORDS: list[set] = []

_TRITON_TYPES = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64"}


def _record(kernel_name: str, args: dict, constexprs: dict, num_warps: int) -> None:
    if not _RECORDS:
        return
    types = {}
    for name, value in args.items():
        if isinstance(value, torch.Tensor):
            types[name] = _TRITON_TYPES[value.dtype]
        elif isinstance(value, bool):
            types[name] = "i1"
        elif isinstance(value, int):
            types[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
        else:
            types[name] = "fp32"
    key = (kernel_name, tuple(types.items()), tuple(sorted(constexprs.items())), num_warps)
    for records in _RECORDS:
        records.add(key)


@contextlib.contextmanager
def record_launches() -> Iterator[set]:
    """Collect the distinct kernel configurations launched inside the block (as a GPU would launch them)."""
    records: set = set()
    _RECORDS.append(records)
    try:
        yield records
    finally:
        _RECORDS.remove(records)


def _device_guard(x: Tensor):
    return torch.cuda.device(x.device) if x.is_cuda else _NullGuard()


class _NullGuard:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _sum_to_bias(t: Tensor, dim: int) -> Tensor:
    """Reduce a gradient of x's shape to the bias's [C]."""
    return t.sum([i for i in range(t.ndim) if i != dim])


# ----------------------------------------------------------------------------------------------------------------
# bias_act


@torch.library.custom_op("medgan::bias_act", mutates_args=())
def bias_act(x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float, clamp: float) -> Tensor:
    """y = clamp(f(x + b) * gain); `b` of shape [x.shape[dim]] or None; clamp < 0: none."""
    return _launch_bias_act(0, x, b, None, None, dim, act, alpha, gain, clamp)


@torch.library.custom_op("medgan::bias_act_grad", mutates_args=())
def bias_act_grad(
    dy: Tensor, x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float, gain: float, clamp: float
) -> Tensor:
    """dx = dy * f'(x + b) * gain, zero where the forward output was clamped."""
    return _launch_bias_act(1, x, b, dy, None, dim, act, alpha, gain, clamp)


@torch.library.custom_op("medgan::bias_act_grad2", mutates_args=())
def bias_act_grad2(
    g: Tensor,
    dy: Tensor,
    x: Tensor,
    b: Tensor | None,
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: float,
) -> Tensor:
    """The gradient of bias_act_grad w.r.t. x for incoming gradient g: g * dy * f''(x + b) * gain * mask."""
    return _launch_bias_act(2, x, b, g, dy, dim, act, alpha, gain, clamp)


@bias_act.register_fake
def _(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(_dense_fake(x))


@bias_act_grad.register_fake
def _(dy, x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(_dense_fake(x))


@bias_act_grad2.register_fake
def _(g, dy, x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(_dense_fake(x))


def _dense_fake(x: Tensor) -> Tensor:
    """The layout `_dense` gives, without copying data."""
    if x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return x
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


# Activations whose second derivative is zero almost everywhere (NVIDIA's has_2nd_grad=False).
_PIECEWISE_LINEAR = ("linear", "relu", "lrelu")


def _bias_act_setup(ctx, inputs, output):
    x, b, dim, act, alpha, gain, clamp = inputs
    ctx.save_for_backward(x, b)
    ctx.params = (dim, act, alpha, gain, clamp)


def _bias_act_backward(ctx, dy):
    x, b = ctx.saved_tensors
    dim = ctx.params[0]
    dx = bias_act_grad(dy, x, b, *ctx.params)
    db = _sum_to_bias(dx, dim) if b is not None and ctx.needs_input_grad[1] else None
    return dx, db, None, None, None, None, None


def _bias_act_grad_setup(ctx, inputs, output):
    dy, x, b = inputs[:3]
    ctx.save_for_backward(dy, x, b)
    ctx.params = tuple(inputs[3:])


def _bias_act_grad_backward(ctx, ddx):
    dy, x, b = ctx.saved_tensors
    dim, act = ctx.params[:2]
    d_dy = bias_act_grad(ddx, x, b, *ctx.params) if ctx.needs_input_grad[0] else None
    d_x = d_b = None
    if act not in _PIECEWISE_LINEAR and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
        d_x = bias_act_grad2(ddx, dy, x, b, *ctx.params)
        d_b = _sum_to_bias(d_x, dim) if b is not None and ctx.needs_input_grad[2] else None
    return d_dy, d_x, d_b, None, None, None, None, None


bias_act.register_autograd(_bias_act_backward, setup_context=_bias_act_setup)
bias_act_grad.register_autograd(_bias_act_grad_backward, setup_context=_bias_act_grad_setup)


# ----------------------------------------------------------------------------------------------------------------
# upfirdn2d


def upfirdn2d_out_shape(x_shape, f_shape, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
    """[N, C, OH, OW] of upfirdn2d for an input of `x_shape` and a filter of `f_shape` ([taps] or [fh, fw])."""
    n, c, h, w = x_shape
    fh, fw = (f_shape[0], f_shape[0]) if len(f_shape) == 1 else tuple(f_shape)
    out_h = (h * up_y + pad_y0 + pad_y1 - fh + down_y) // down_y
    out_w = (w * up_x + pad_x0 + pad_x1 - fw + down_x) // down_x
    return n, c, out_h, out_w


def _out_memory_format(x: Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@torch.library.custom_op("medgan::upfirdn2d", mutates_args=())
def upfirdn2d(
    x: Tensor,
    f: Tensor,
    up_x: int,
    up_y: int,
    down_x: int,
    down_y: int,
    pad_x0: int,
    pad_x1: int,
    pad_y0: int,
    pad_y1: int,
    flip_filter: bool,
    gain: float,
) -> Tensor:
    """[N, C, H, W] -> [N, C, OH, OW]: zero-insert by up, pad (negative crops), convolve with f, keep every down-th.

    `f` is [taps] (separable: applied along x and y, total gain `gain`) or [fh, fw].
    """
    _check_device(x)
    kernels = _kernels("upfirdn2d")
    shape = upfirdn2d_out_shape(x.shape, f.shape, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_out_memory_format(x))
    if out.numel() == 0:
        return out
    f = f.to(_compute_dtype(x)).contiguous()
    fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
    q_h = triton_cdiv(shape[2], up_y)
    q_w = triton_cdiv(shape[3], up_x)
    num_planes = shape[0] * shape[1]
    args = dict(
        x_ptr=x, f_ptr=f, out_ptr=out, num_planes=num_planes, num_channels=shape[1],
        in_h=x.shape[2], in_w=x.shape[3], out_h=shape[2], out_w=shape[3],
        sx_n=x.stride(0), sx_c=x.stride(1), sx_h=x.stride(2), sx_w=x.stride(3),
        so_n=out.stride(0), so_c=out.stride(1), so_h=out.stride(2), so_w=out.stride(3), gain=float(gain),
    )  # fmt: skip
    constexprs = dict(
        UP_X=up_x, UP_Y=up_y, DOWN_X=down_x, DOWN_Y=down_y, PAD_X0=pad_x0, PAD_Y0=pad_y0, FH=fh, FW=fw,
        SEPARABLE=f.ndim == 1, FLIP=bool(flip_filter), ACC_FP64=x.dtype == torch.float64,
    )  # fmt: skip
    blocks = launch_config.upfirdn2d(num_planes, q_h, q_w, x.is_cuda)
    gpu_blocks = launch_config.upfirdn2d(num_planes, q_h, q_w, True)
    _record("upfirdn2d_kernel", args, dict(constexprs, **_block_kwargs(gpu_blocks)), gpu_blocks[3])
    grid = (triton_cdiv(num_planes, blocks[0]), triton_cdiv(q_h, blocks[1]), triton_cdiv(q_w, blocks[2]))
    _launch(kernels.upfirdn2d_kernel, grid, args, dict(constexprs, **_block_kwargs(blocks)), blocks[3])
    return out


@upfirdn2d.register_fake
def _(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain):
    shape = upfirdn2d_out_shape(x.shape, f.shape, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_out_memory_format(x))


def _upfirdn2d_setup(ctx, inputs, output):
    x, f = inputs[:2]
    ctx.save_for_backward(f)
    ctx.params = tuple(inputs[2:])
    ctx.in_size = (x.shape[2], x.shape[3])
    ctx.out_size = (output.shape[2], output.shape[3])


def _upfirdn2d_backward(ctx, dy):
    # The adjoint of upfirdn2d is upfirdn2d with up and down swapped and the filter rotated by 180 degrees,
    # padded so that the result has the input's size.
    (f,) = ctx.saved_tensors
    up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain = ctx.params
    in_h, in_w = ctx.in_size
    out_h, out_w = ctx.out_size
    fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
    p_x0 = fw - pad_x0 - 1
    p_x1 = in_w * up_x - out_w * down_x + pad_x0 - up_x + 1
    p_y0 = fh - pad_y0 - 1
    p_y1 = in_h * up_y - out_h * down_y + pad_y0 - up_y + 1
    dx = upfirdn2d(dy, f, down_x, down_y, up_x, up_y, p_x0, p_x1, p_y0, p_y1, not flip_filter, gain)
    return (dx,) + (None,) * 11


upfirdn2d.register_autograd(_upfirdn2d_backward, setup_context=_upfirdn2d_setup)
