"""StyleGAN2's modulated convolution with weight demodulation (Karras et al. 2020, section 2.2).

Each sample's styles scale the input channels of the shared kernel, `w'_oikk = s_i * w_oikk`; demodulation
rescales each output channel to unit expected variance, `w''_oikk = w'_oikk / sqrt(sum_ikk w'^2 + 1e-8)`.
The fused path runs all samples as one grouped convolution (groups = batch); the unfused path scales the
activations before and after a shared convolution instead, which is the same maths.
"""

from __future__ import annotations

import numpy as np
import torch

from medgan_core.ops.conv2d_resample import conv2d_resample


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
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

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
    return x
