"""StyleGAN2's modulated convolution with weight demodulation (Karras et al. 2020, section 2.2).

Each sample's styles scale the input channels of the shared kernel, `w'_oikk = s_i * w_oikk`; demodulation
rescales each output channel to unit expected variance, `w''_oikk = w'_oikk / sqrt(sum_ikk w'^2 + 1e-8)`.
The fused path runs all samples as one grouped convolution (groups = batch); the unfused path scales the
activations before and after a shared convolution instead, which is the same maths.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan_core.ops import winograd
from medgan_core.ops.bias_act import activation_funcs, bias_act
from medgan_core.ops.conv2d_resample import conv2d_resample
from medgan_core.ops.upfirdn2d import _parse_padding


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding=0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
    gain: float = 1,
) -> torch.Tensor:
    """Modulated (and by default demodulated) convolution with optional resampling and additive noise.

    Args:
        x:               [N, C_in, H, W] activations.
        weight:          [C_out, C_in, kh, kw] shared kernel.
        styles:          [N, C_in] per-sample modulation coefficients.
        noise:           tensor broadcastable to the output (e.g. [N, 1, H', W'] or [H', W']), or None.
        up, down:        integer resampling factors.
        padding:         padding w.r.t. the upsampled image.
        resample_filter: low-pass filter from `upfirdn2d.setup_filter()`.
        demodulate:      apply weight demodulation.
        flip_weight:     True = correlation, False = convolution.
        fused_modconv:   one grouped convolution (True) or activation scaling around a shared one (False).
        gain:            output gain, noise included: gain * modulated_conv2d(...); unfused and demodulated it
                         rides on the demodulation coefficients (no pass of its own).

    Returns:
        [N, C_out, H * up // down, W * up // down].
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels or tuple(styles.shape) != (batch_size, in_channels):
        raise ValueError(
            f"shapes do not agree: x {tuple(x.shape)}, weight {tuple(weight.shape)}, styles {tuple(styles.shape)}"
        )

    # Pre-normalise so that float16 activations cannot overflow; demodulation undoes the scale.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # Demodulation coefficients: sum_ikk (s_i w_oikk)^2 = sum_i s_i^2 sum_kk w_oikk^2, a [N, I] x [I, O] product
    # (the same sum as NVIDIA's, without forming the [N, O, I, kh, kw] weights just to reduce them).
    dcoefs = None
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    # Per-sample weights for the fused path.
    w = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
        if demodulate:
            w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate and gain != 1:
            dcoefs = dcoefs * gain
            noise = noise.to(x.dtype) * gain if noise is not None else None
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x * gain if gain != 1 else x

    # One grouped convolution: the batch becomes the group axis.
    x = x.reshape(1, -1, *x.shape[2:])  # [1, N * I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N * O, I, kh, kw]
    x = conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
        flip_weight=flip_weight,
    )  # fmt: skip
    x = x.reshape(batch_size, -1, *x.shape[2:])  # [N, O, H', W']
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x * gain if gain != 1 else x


# Activations with act(g * y) == g * act(y) for g > 0, so the output gain can be applied before them.
_POSITIVELY_HOMOGENEOUS = ("linear", "relu", "lrelu")


def modulated_conv2d_bias_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    bias: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding=0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
    overwrite_input: bool = False,
) -> torch.Tensor:
    """`bias_act(modulated_conv2d(x, ...), bias, act, gain=gain, clamp=clamp)` for inference (no autograd).

    The same maths, up to float32 rounding, with fewer passes over the activations, for CPU generation:
    a 1x1 kernel (toRGB) forms the per-sample weights and runs one batched matrix product; a larger kernel scales
    the input by the styles and runs one dense convolution shared by the batch (as fast as a plain `conv2d`,
    where a grouped convolution with per-sample weights is not on CPUs; 3x3 kernels of 256 or more channels by
    Winograd's F(4x4, 3x3), `medgan_core.ops.winograd`). Demodulation, gain, noise and bias then
    take one in-place pass, the activation and the clamp one each. Keeps the memory format of `x`
    (channels-last is the fast one on CPUs).

    Args:
        x, weight, styles, noise, up, padding, resample_filter, demodulate, flip_weight: as `modulated_conv2d`.
        bias:            [C_out].
        act, gain, clamp: as `bias_act` (gain given explicitly, e.g. sqrt(2) for lrelu).
        overwrite_input: the caller no longer needs `x`: scale it in place (no fresh full-size buffer, which
                         glibc's default allocator page-faults in anew each time).

    Returns:
        [N, C_out, H * up, W * up].
    """
    if torch.is_grad_enabled() or act not in _POSITIVELY_HOMOGENEOUS or gain <= 0:
        y = modulated_conv2d(
            x, weight, styles, noise=noise, up=up, padding=padding, resample_filter=resample_filter,
            demodulate=demodulate, flip_weight=flip_weight,
        )  # fmt: skip
        return bias_act(y, bias, act=act, gain=gain, clamp=clamp)
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels or tuple(styles.shape) != (x.shape[0], in_channels):
        raise ValueError(
            f"shapes do not agree: x {tuple(x.shape)}, weight {tuple(weight.shape)}, styles {tuple(styles.shape)}"
        )
    batch_size, _, height, width = x.shape
    scale = None  # [N, O]: demodulation coefficients times gain
    if demodulate:
        weight_sq = torch.linalg.vector_norm(weight, dim=(2, 3)).square_()  # [O, I], no [O, I, k, k] temporary
        scale = torch.mm(styles.square(), weight_sq.t()).add_(1e-8).rsqrt_().mul_(gain)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()

    if kh == kw == 1 and up == 1 and padding == 0:
        w = weight[:, :, 0, 0].unsqueeze(0) * styles.unsqueeze(1)  # [N, O, I] per-sample weights
        if channels_last:  # [N, H * W, I] @ [N, I, O]
            y = torch.bmm(x.permute(0, 2, 3, 1).reshape(batch_size, -1, in_channels), w.transpose(1, 2))
            y = y.reshape(batch_size, height, width, out_channels).permute(0, 3, 1, 2)
        else:  # [N, O, I] @ [N, I, H * W]
            y = torch.bmm(w, x.reshape(batch_size, in_channels, -1)).reshape(batch_size, out_channels, height, width)
    else:
        styles = styles.reshape(batch_size, -1, 1, 1)
        x = x.mul_(styles) if overwrite_input else x * styles
        if up == 1 and _winograd_pays(weight, x, padding, flip_weight):
            y = winograd.conv3x3(x, winograd.cached_kernel_transform(weight))
        else:
            y = conv2d_resample(x, weight, f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)

    # y = act(scale * y + gain * (noise + bias)) == gain * act(dcoefs * y + noise + bias), then the clamp. The
    # shift is made in y's memory format: a broadcast across formats is several times slower on CPUs.
    shift = bias.reshape(1, -1, 1, 1) * gain  # [1, O, 1, 1]
    if noise is not None:  # [H, W] (constant) or [N, 1, H, W] (per sample)
        shape = (noise.shape[0] if noise.ndim == 4 else 1, out_channels, *y.shape[2:])
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        shift = torch.add(shift, noise, alpha=gain, out=torch.empty(shape, dtype=y.dtype, memory_format=memory_format))
    if scale is not None:
        torch.addcmul(shift, y, scale.reshape(batch_size, -1, 1, 1), out=y)
    else:
        y = y.mul_(gain).add_(shift) if gain != 1 else y.add_(shift)
    if act == "lrelu":
        torch.nn.functional.leaky_relu_(y, activation_funcs[act].def_alpha)
    elif act == "relu":
        y.relu_()
    if clamp is not None:
        y.clamp_(-float(clamp), float(clamp))
    return y


def _winograd_pays(weight: torch.Tensor, x: torch.Tensor, padding, flip_weight: bool) -> bool:
    """A 3x3 correlation with padding 1 (stride 1) whose shape `winograd.pays` picks."""
    out_channels, in_channels, kh, kw = weight.shape
    return (
        kh == kw == 3 and flip_weight and _parse_padding(padding) == (1, 1, 1, 1)
        and winograd.pays(in_channels, out_channels, x.shape[2], x.shape[3])
    )  # fmt: skip
