"""`modulated_conv2d_bias_act` (the CPU inference path) against `bias_act(modulated_conv2d(...))`."""

from __future__ import annotations

import math

import pytest
import torch

from medgan_core.ops import bias_act, upfirdn2d, winograd
from medgan_core.ops.modulated_conv2d import modulated_conv2d, modulated_conv2d_bias_act

CASES = [  # kernel, up, demodulate, noise, act, clamp, channels_last
    (3, 1, True, "const", "lrelu", 0.3, True),
    (3, 2, True, "random", "lrelu", None, True),
    (3, 2, True, "const", "relu", 0.2, False),
    (1, 1, False, None, "linear", 0.1, True),
    (1, 1, False, None, "linear", None, False),
    (3, 1, True, "random", "swish", 0.5, True),  # not positively homogeneous: takes the general path
]


@pytest.mark.parametrize("case", CASES)
def test_matches_the_composed_ops(case):
    kernel, up, demodulate, noise_kind, act, clamp, channels_last = case
    gen = torch.Generator().manual_seed(kernel + up)
    x = torch.randn(3, 5, 6, 6, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, 5, kernel, kernel, generator=gen)
    styles = torch.randn(3, 5, generator=gen)
    bias = torch.randn(4, generator=gen)
    out_res = 6 * up
    noise = {None: None, "const": torch.randn(out_res, out_res, generator=gen)}.get(noise_kind)
    if noise_kind == "random":
        noise = torch.randn(3, 1, out_res, out_res, generator=gen)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    conv = dict(up=up, padding=kernel // 2, resample_filter=f, demodulate=demodulate, flip_weight=up == 1)
    gain = math.sqrt(2) if act != "linear" else 1.0
    want = bias_act.bias_act(
        modulated_conv2d(x, weight, styles, noise=noise, **conv), bias, act=act, gain=gain, clamp=clamp
    )
    x_before = x.clone()
    with torch.no_grad():
        got = modulated_conv2d_bias_act(x, weight, styles, bias, noise=noise, act=act, gain=gain, clamp=clamp, **conv)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # the input is left alone unless allowed
    if channels_last and act != "swish":
        assert got.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():  # overwrite_input: same result; a 3x3 kernel then scales x in place
        again = modulated_conv2d_bias_act(
            x, weight, styles, bias, noise=noise, act=act, gain=gain, clamp=clamp, overwrite_input=True, **conv
        )
    torch.testing.assert_close(again, got, rtol=0, atol=0)


def test_mismatched_shapes_are_reported():
    x, weight, bias = torch.zeros(2, 5, 4, 4), torch.zeros(3, 5, 3, 3), torch.zeros(3)
    with torch.no_grad(), pytest.raises(ValueError, match="shapes do not agree"):
        modulated_conv2d_bias_act(x, weight, torch.zeros(2, 4), bias, padding=1)
    with torch.no_grad(), pytest.raises(ValueError, match="shapes do not agree"):
        modulated_conv2d_bias_act(x[0], weight, torch.zeros(2, 5), bias, padding=1)


def test_wide_layers_take_the_winograd_convolution(monkeypatch):
    """256 channels at 8x8 (StyleGAN's low resolutions): Winograd F(4x4, 3x3), float32 rounding of float64."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 256, 8, 8, generator=gen).contiguous(memory_format=torch.channels_last)
    weight, styles = torch.randn(256, 256, 3, 3, generator=gen), torch.randn(2, 256, generator=gen)
    bias, noise = torch.randn(256, generator=gen), torch.randn(8, 8, generator=gen)
    calls = []
    original = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda *args: calls.append(1) or original(*args))
    args = dict(act="lrelu", gain=math.sqrt(2), clamp=256.0)
    want = bias_act.bias_act(
        modulated_conv2d(x.double(), weight.double(), styles.double(), noise=noise.double(), padding=1),
        bias.double(), **args,
    )  # fmt: skip
    with torch.no_grad():
        got = modulated_conv2d_bias_act(x, weight, styles, bias, noise=noise, padding=1, **args)
    assert calls == [1]
    assert ((got.double() - want).abs().max() / want.abs().max()).item() < 2e-5
