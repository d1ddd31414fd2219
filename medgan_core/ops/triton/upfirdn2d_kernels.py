"""Triton kernel for upfirdn2d: upsample by zero insertion, pad, FIR-filter and downsample in one pass.

With `u` the zero-stuffed, padded input and `w` the correlation kernel (the filter `f` flipped for convolution,
or as given when FLIP; a separable [taps] filter acts as the outer product `f f^T`), each output is

    out[oy, ox] = gain * sum_{i, j} w[i, j] * u[oy * down_y + i, ox * down_x + j].

Only the taps that land on a real input pixel matter: splitting the output rows by `oy mod up_y` makes that set
a compile-time constant (`i = phase + up_y * t`), so each program loops over `up_y * up_x` phases and, per phase,
over `ceil(fh / up_y) * ceil(fw / up_x)` taps with scalar weights; zeros are never read or multiplied. For the
factor-2, 4-tap filters of StyleGAN2 that is 2 x 2 taps per output when upsampling and 4 x 4 when downsampling.

One program computes a tile of [BLOCK_NC, BLOCK_QY, BLOCK_QX]: BLOCK_NC (sample, channel) planes times a tile of
phase indices `q`; the outputs are `oy = q_y * up_y + r_y`. Several planes per program keep the lanes busy on
the small images of the low-resolution layers (and make the CPU interpreter fast). Importing this module imports
triton (see bias_act_kernels for the interpreter).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tap(
    f_ptr,
    i: tl.constexpr,
    j: tl.constexpr,
    FH: tl.constexpr,
    FW: tl.constexpr,
    SEPARABLE: tl.constexpr,
    FLIP: tl.constexpr,
):
    """Correlation weight w[i, j]: the filter itself when FLIP, else the filter rotated by 180 degrees."""
    fi: tl.constexpr = i if FLIP else FH - 1 - i
    fj: tl.constexpr = j if FLIP else FW - 1 - j
    if SEPARABLE:
        w = tl.load(f_ptr + fi) * tl.load(f_ptr + fj)
    else:
        w = tl.load(f_ptr + (fi * FW + fj))
    return w


@triton.jit
def upfirdn2d_kernel(
    x_ptr,  # [N, C, H, W] input, any strides
    f_ptr,  # [FH, FW] or, with SEPARABLE, [FH] contiguous filter
    out_ptr,  # [N, C, OH, OW] output, any strides
    num_planes,  # N * C
    num_channels,
    in_h,
    in_w,
    out_h,
    out_w,
    sx_n,
    sx_c,
    sx_h,
    sx_w,
    so_n,
    so_c,
    so_h,
    so_w,
    gain,
    UP_X: tl.constexpr,
    UP_Y: tl.constexpr,
    DOWN_X: tl.constexpr,
    DOWN_Y: tl.constexpr,
    PAD_X0: tl.constexpr,
    PAD_Y0: tl.constexpr,
    FH: tl.constexpr,
    FW: tl.constexpr,
    SEPARABLE: tl.constexpr,
    FLIP: tl.constexpr,
    ACC_FP64: tl.constexpr,
    BLOCK_NC: tl.constexpr,
    BLOCK_QY: tl.constexpr,
    BLOCK_QX: tl.constexpr,
):
    plane = (tl.program_id(0) * BLOCK_NC + tl.arange(0, BLOCK_NC))[:, None, None]  # [BNC, 1, 1]
    plane_ok = plane < num_planes
    n = (plane // num_channels).to(tl.int64)
    c = (plane % num_channels).to(tl.int64)
    x_base = x_ptr + (n * sx_n + c * sx_c)
    out_base = out_ptr + (n * so_n + c * so_c)
    qy = (tl.program_id(1) * BLOCK_QY + tl.arange(0, BLOCK_QY))[None, :, None]  # [1, BQY, 1]
    qx = (tl.program_id(2) * BLOCK_QX + tl.arange(0, BLOCK_QX))[None, None, :]  # [1, 1, BQX]

    for ry in tl.static_range(UP_Y):
        for rx in tl.static_range(UP_X):
            _phase_tile(
                x_base, f_ptr, out_base, plane_ok, qy, qx, in_h, in_w, out_h, out_w, sx_h, sx_w, so_h, so_w, gain,
                ry, rx, UP_X, UP_Y, DOWN_X, DOWN_Y, PAD_X0, PAD_Y0, FH, FW, SEPARABLE, FLIP, ACC_FP64,
                BLOCK_NC, BLOCK_QY, BLOCK_QX,
            )  # fmt: skip


@triton.jit
def _phase_tile(
    x_base, f_ptr, out_base, plane_ok, qy, qx, in_h, in_w, out_h, out_w, sx_h, sx_w, so_h, so_w, gain,
    RY: tl.constexpr, RX: tl.constexpr, UP_X: tl.constexpr, UP_Y: tl.constexpr, DOWN_X: tl.constexpr,
    DOWN_Y: tl.constexpr, PAD_X0: tl.constexpr, PAD_Y0: tl.constexpr, FH: tl.constexpr, FW: tl.constexpr,
    SEPARABLE: tl.constexpr, FLIP: tl.constexpr, ACC_FP64: tl.constexpr, BLOCK_NC: tl.constexpr,
    BLOCK_QY: tl.constexpr, BLOCK_QX: tl.constexpr,
):  # fmt: skip
    """Outputs (qy * UP_Y + RY, qx * UP_X + RX): the taps i = phase_y + UP_Y * t (those with
    (oy * DOWN_Y + i - PAD_Y0) divisible by UP_Y) read input row qy * DOWN_Y + offset_y + t; likewise along x."""
    phase_y: tl.constexpr = (PAD_Y0 - RY * DOWN_Y) % UP_Y
    offset_y: tl.constexpr = (RY * DOWN_Y + phase_y - PAD_Y0) // UP_Y
    taps_y: tl.constexpr = (FH - phase_y + UP_Y - 1) // UP_Y
    phase_x: tl.constexpr = (PAD_X0 - RX * DOWN_X) % UP_X
    offset_x: tl.constexpr = (RX * DOWN_X + phase_x - PAD_X0) // UP_X
    taps_x: tl.constexpr = (FW - phase_x + UP_X - 1) // UP_X
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    acc = tl.zeros([BLOCK_NC, BLOCK_QY, BLOCK_QX], dtype=acc_dtype)
    for ty in tl.static_range(taps_y):
        sy = qy * DOWN_Y + (offset_y + ty)
        row_ok = plane_ok & (sy >= 0) & (sy < in_h)
        for tx in tl.static_range(taps_x):
            sx = qx * DOWN_X + (offset_x + tx)
            ok = row_ok & (sx >= 0) & (sx < in_w)
            weight = _tap(f_ptr, phase_y + UP_Y * ty, phase_x + UP_X * tx, FH, FW, SEPARABLE, FLIP)
            value = tl.load(x_base + sy * sx_h + sx * sx_w, mask=ok, other=0.0)
            acc += value.to(acc_dtype) * weight.to(acc_dtype)
    oy = qy * UP_Y + RY
    ox = qx * UP_X + RX
    keep = plane_ok & (oy < out_h) & (ox < out_w)
    acc = acc * gain
    tl.store(out_base + oy * so_h + ox * so_w, acc.to(out_base.dtype.element_ty), mask=keep)
