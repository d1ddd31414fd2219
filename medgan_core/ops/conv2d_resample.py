"""2-D convolution with FIR-filtered up/downsampling (StyleGAN2's resampling convolutions).

Upsampling by 2 runs as a stride-2 transposed convolution followed by the FIR filter; downsampling as the FIR
filter followed by a stride-2 convolution; 1x1 kernels resample on the cheaper side of the convolution. Padding is
applied once, at the start. Plain PyTorch: first and second derivatives come from autograd.

NVIDIA routes convolutions through `conv2d_gradfix` to skip weight gradients in path-length regularisation; here
that comes from autograd itself: `torch.autograd.grad(out, inputs=[ws], create_graph=True)` computes only the
gradients on the path to `ws`, so no weight gradient is formed in that first pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medgan_core.ops import upfirdn2d
from medgan_core.ops.upfirdn2d import _get_filter_size, _parse_padding


def _conv2d_wrapper(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True, bias=None):
    """`conv2d` / `conv_transpose2d`; flip_weight=False flips the kernel to get a true convolution."""
    _, _, kh, kw = w.shape
    if not flip_weight and (kw > 1 or kh > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, bias, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, bias, stride=stride, padding=padding, groups=groups)


def _add_bias(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x if bias is None else x + bias.reshape(1, -1, 1, 1)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding=0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convolve `x` with `w`, upsampling or downsampling with the low-pass filter `f`.

    Args:
        x:           [N, C_in, H, W].
        w:           [C_out, C_in // groups, kh, kw], same dtype as `x`.
        f:           low-pass filter from `upfirdn2d.setup_filter()`, or None (identity).
        up, down:    integer factors.
        padding:     int, (x, y) or (x0, x1, y0, y1), w.r.t. the upsampled image (e.g. kernel_size // 2).
        groups:      grouped convolution.
        flip_weight: True = correlation (like `torch.nn.functional.conv2d`), False = convolution.
        flip_filter: True = correlate with `f`, False = convolve.
        bias:        [C_out] added to the output: inside the convolution when it is the last step (no pass of its
                     own, forward or backward), else after the filter.

    Returns:
        [N, C_out, H * up // down, W * up // down] for `padding = kernel_size // 2`.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D, got {tuple(x.shape)} and {tuple(w.shape)}")
    if w.dtype != x.dtype:
        raise ValueError(f"w ({w.dtype}) and x ({x.dtype}) must have the same dtype")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1 and groups >= 1):
        raise ValueError(f"up, down and groups must be positive integers, got {up}, {down}, {groups}")
    out_channels, in_channels_per_group, kh, kw = w.shape
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Padding that centres the filter for up/downsampling.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, downsampling only: downsample first, then convolve fewer pixels.
    if kw == 1 and kh == 1 and (down > 1 and up == 1):
        x = upfirdn2d.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight, bias=bias)

    # 1x1 kernel, upsampling only: convolve first, then upsample.
    if kw == 1 and kh == 1 and (up > 1 and down == 1):
        x = _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)
        return _add_bias(x, bias)

    # Downsampling only: filter, then a strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d_wrapper(x, w, stride=down, groups=groups, flip_weight=flip_weight, bias=bias)

    # Upsampling (optionally followed by downsampling): strided transposed convolution, then filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)  # [C_in, C_out, kh, kw]
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        # The part of the padding both sides share becomes a crop inside the transposed convolution.
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d_wrapper(
            x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight
        )
        x = upfirdn2d.upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter
        )
        if down > 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return _add_bias(x, bias)

    # No resampling and symmetric non-negative padding: a plain convolution.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d_wrapper(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight, bias=bias)

    # General case.
    x = upfirdn2d.upfirdn2d(
        x, (f if up > 1 else None), up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter
    )
    x = _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight, bias=bias if down == 1 else None)
    if down > 1:
        x = _add_bias(upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter), bias)
    return x
