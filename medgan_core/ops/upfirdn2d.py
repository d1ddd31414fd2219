"""Upsample, pad, FIR-filter and downsample a batch of 2-D images (like `scipy.signal.upfirdn` per channel).

The reference implementation is plain PyTorch (zero insertion, padding, a depthwise convolution, striding), so
first and second derivatives come from autograd on any device and float dtype. Filters are made by
`setup_filter()`: a 1-D tensor [taps] is separable (applied along x then y), a 2-D tensor [fh, fw] is the full
kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medgan_core.ops import dispatch
from medgan_core.ops.triton import custom_ops

CPU = torch.device("cpu")
FOLD_CHANNELS = 4  # at most this many channels: the batch folds into the channels of the depthwise convolution


def _parse_scaling(scaling) -> tuple[int, int]:
    """int or (sx, sy) -> (sx, sy), each >= 1."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"up/down factors must be >= 1, got {scaling}")
    return sx, sy


def _parse_padding(padding) -> tuple[int, int, int, int]:
    """int, (px, py) or (px0, px1, py0, py1) -> (px0, px1, py0, py1). Negative values crop."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        padx, pady = padding
        padding = [padx, padx, pady, pady]
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding}")
    padx0, padx1, pady0, pady1 = padding
    return padx0, padx1, pady0, pady1


def _get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a separable [taps] or full [fh, fw] filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D (separable) or 2-D, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(
    f,
    device: torch.device | str = CPU,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Make a float32 FIR filter for `upfirdn2d()`.

    Args:
        f:           list, array or tensor of shape [fh, fw] (full), [taps] (1-D), [] (impulse); None = identity.
        device:      device of the result.
        normalize:   scale so that a constant signal keeps its value (the taps sum to one).
        flip_filter: flip the filter (correlation instead of convolution).
        gain:        overall signal gain.
        separable:   keep a 1-D filter separable; None = only when it has at least 8 taps (NVIDIA's rule).
            A non-separable 1-D filter becomes its outer product, e.g. [1,3,3,1] -> a [4, 4] kernel.

    Returns:
        float32 tensor of shape [taps] (separable) or [fh, fw].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be a scalar, 1-D or 2-D and non-empty, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("a 2-D filter cannot be made separable")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up=1,
    down=1,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with `f`, keep every `down`-th pixel.

    Args:
        x:           [N, C, H, W] float tensor.
        f:           filter from `setup_filter()` ([taps] separable or [fh, fw]); None = identity.
        up, down:    int or (x, y) integer factors.
        padding:     int, (x, y) or (x0, x1, y0, y1), in pixels of the upsampled image.
        flip_filter: False = convolution, True = correlation.
        gain:        overall signal gain.
        impl:        'auto', 'ref' or 'triton' (see `medgan_core.ops.dispatch`).

    Returns:
        [N, C, (H * up_y + py0 + py1 - fh) // down_y + 1, (W * up_x + px0 + px1 - fw) // down_x + 1].
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape [N, C, H, W], got {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    if x.shape[3] * upx + padx0 + padx1 < fw or x.shape[2] * upy + pady0 + pady1 < fh:
        raise ValueError(f"padded image {tuple(x.shape)} (up {up}, padding {padding}) is smaller than the filter")
    args = (upx, upy, downx, downy, padx0, padx1, pady0, pady1, bool(flip_filter), float(gain))

    # A filter that requires grad takes plain autograd through the reference (the kernel has no filter gradient).
    if f.requires_grad:
        return _upfirdn2d_forward(x, f, *args)
    if dispatch.use_triton("upfirdn2d", impl, x):
        return custom_ops.upfirdn2d(x, f, *args)
    return _Upfirdn2dRef.apply(x, f, *args)


def _upfirdn2d_forward(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain):
    """Zero insertion, pad/crop, depthwise convolution with `f`, decimation."""
    batch_size, num_channels, in_height, in_width = x.shape

    # Upsample by inserting up-1 zeros after each pixel.
    if upx > 1 or upy > 1:
        x = x.reshape([batch_size, num_channels, in_height, 1, in_width, 1])
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([batch_size, num_channels, in_height * upy, in_width * upx])

    # Symmetric padding goes into the convolution (no padded copy of x); other padding pads, then crops.
    conv_padding = (pady0, padx0) if padx0 == padx1 >= 0 and pady0 == pady1 >= 0 else (0, 0)
    if conv_padding == (0, 0):
        x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
        x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]

    # conv2d correlates, so flip the filter to convolve unless asked for correlation.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    # Images with few channels (grayscale, RGB: the augment pipe's wavelet filters, G's image upsampling) fold the
    # batch into the channels: oneDNN's convolution of one or three channels does not vectorise (~50x slower on
    # a 16 x 1 x 190 x 190 batch than the same filter as a depthwise convolution over 16 channels).
    fold = batch_size if num_channels <= FOLD_CHANNELS and batch_size > 1 and x.is_contiguous() else 1
    if fold > 1:
        x = x.reshape(1, batch_size * num_channels, *x.shape[2:])
    groups = num_channels * fold
    f = f[None, None].repeat([groups, 1] + [1] * f.ndim)  # [groups, 1, fh, fw] or [groups, 1, taps]
    if f.ndim == 4:
        x = F.conv2d(x, f, padding=conv_padding, groups=groups)
    else:
        x = F.conv2d(x, f.unsqueeze(2), padding=(0, conv_padding[1]), groups=groups)  # along x: [C, 1, 1, taps]
        x = F.conv2d(x, f.unsqueeze(3), padding=(conv_padding[0], 0), groups=groups)  # along y: [C, 1, taps, 1]
    if fold > 1:
        x = x.reshape(batch_size, num_channels, *x.shape[2:])

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


class _Upfirdn2dRef(torch.autograd.Function):
    """upfirdn2d with a constant filter; its backward is the adjoint upfirdn2d, itself differentiable.

    With a constant filter (the usual case) the gradient is the adjoint upfirdn2d (down and up swapped, filter
    flipped, padding mirrored), as in NVIDIA's CUDA op, so every order of derivative is again an upfirdn2d. This
    avoids PyTorch's double backward of depthwise convolutions, which loops over the channels (~50x slower on
    CPU for R1).
    """

    @staticmethod
    def forward(ctx, x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain):
        y = _upfirdn2d_forward(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, gain)
        if y._base is not None:  # a strided view: callers may add into the result in place
            y = y.clone(memory_format=torch.preserve_format)  # dense, in the input's layout
        ctx.save_for_backward(f)
        ctx.args = (upx, upy, downx, downy, padx0, pady0, flip_filter, gain)
        ctx.x_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        upx, upy, downx, downy, padx0, pady0, flip_filter, gain = ctx.args
        _, _, in_h, in_w = ctx.x_shape
        _, _, out_h, out_w = dy.shape
        fw, fh = _get_filter_size(f)
        # Padding of the adjoint: the output grid mapped back onto the input grid, as in NVIDIA's CUDA op.
        p = [
            fw - padx0 - 1,
            in_w * upx - out_w * downx + padx0 - upx + 1,
            fh - pady0 - 1,
            in_h * upy - out_h * downy + pady0 - upy + 1,
        ]
        dx = _Upfirdn2dRef.apply(dy, f, downx, downy, upx, upy, *p, not flip_filter, gain)
        if tuple(dx.shape) != tuple(ctx.x_shape):
            raise RuntimeError(f"upfirdn2d adjoint gave {tuple(dx.shape)} for an input of {tuple(ctx.x_shape)}")
        return (dx,) + (None,) * 11


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Filter [N, C, H, W] with `f`; the output has the input's shape, plus `padding` (w.r.t. the output)."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsample [N, C, H, W] -> [N, C, H * up, W * up] (plus `padding`), keeping the signal's magnitude."""
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    # Zero insertion keeps 1 / (upx * upy) of the energy: the gain restores it.
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Downsample [N, C, H, W] -> [N, C, H // down, W // down] (with `padding` w.r.t. the input)."""
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
