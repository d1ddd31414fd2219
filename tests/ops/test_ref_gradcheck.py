"""First and second derivatives of the reference ops: gradcheck and gradgradcheck in float64.

R1 and path-length regularisation differentiate through every op twice, so both must be right.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from medgan_core.ops import bias_act, conv2d_resample, modulated_conv2d, upfirdn2d


def _rand(*shape, seed=0, requires_grad=True):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_(requires_grad)


def _check(fn, inputs, fast_mode=False):
    """fast_mode compares random projections of the Jacobians (torch's fast gradcheck) for the larger ops."""
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=fast_mode)
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=fast_mode)


def _away_from_kinks(x, b, margin=0.05):
    """Shift x so that x + b stays `margin` away from 0 (relu/lrelu kink) where finite differences are wrong."""
    with torch.no_grad():
        s = x + b.reshape(1, -1, 1)
        x += torch.where(s.abs() < margin, torch.sign(s + 1e-12) * 2 * margin, torch.zeros_like(s))
    return x


@pytest.mark.parametrize("act", sorted(bias_act.activation_funcs))
def test_bias_act_gradients(act):
    b = _rand(4, seed=1)
    x = _away_from_kinks(_rand(2, 4, 3, seed=0), b)
    _check(lambda x, b: bias_act.bias_act(x, b, act=act, impl="ref"), (x, b))


def test_bias_act_gradients_with_alpha_gain_clamp():
    b = _rand(4, seed=3)
    x = _away_from_kinks(_rand(2, 4, 3, seed=2) * 2, b)
    # clamp at 1.3 with gain 0.9: move values off the clamp boundary as well
    with torch.no_grad():
        y = bias_act.bias_act(x, b, act="lrelu", alpha=0.3, gain=0.9)
        near = (y.abs() - 1.3).abs() < 0.05
        x[near] *= 1.2
    _check(lambda x, b: bias_act.bias_act(x, b, act="lrelu", alpha=0.3, gain=0.9, clamp=1.3, impl="ref"), (x, b))


UPFIRDN_CASES = [
    dict(up=2, padding=(2, 1)),
    dict(down=2, padding=1),
    dict(up=(2, 1), down=(1, 2), padding=(1, 2, 0, 1), flip_filter=True, gain=2.0),
    dict(padding=(-1, 1, 1, -1), gain=0.5),
]


@pytest.mark.parametrize("kwargs", UPFIRDN_CASES)
@pytest.mark.parametrize("separable", [False, True])
def test_upfirdn2d_gradients(kwargs, separable):
    f = upfirdn2d.setup_filter([1, 2, 3, 1], separable=separable)
    x = _rand(1, 2, 4, 5)
    _check(lambda x: upfirdn2d.upfirdn2d(x, f, impl="ref", **kwargs), (x,))


def test_resampling_wrapper_gradients():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = _rand(1, 1, 4, 4)
    _check(lambda x: upfirdn2d.upsample2d(x, f, impl="ref"), (x,))
    _check(lambda x: upfirdn2d.downsample2d(x, f, impl="ref"), (x,))
    _check(lambda x: upfirdn2d.filter2d(x, f, impl="ref"), (x,))


@pytest.mark.parametrize("up,down,kernel", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
def test_conv2d_resample_gradients(up, down, kernel):
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = _rand(1, 2, 4, 4, seed=4)
    w = _rand(3, 2, kernel, kernel, seed=5)
    _check(lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=kernel // 2), (x, w))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up,demodulate", [(1, True), (2, True), (1, False)])
def test_modulated_conv2d_gradients(fused, up, demodulate):
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = _rand(2, 2, 3, 3, seed=6)
    weight = _rand(2, 2, 3, 3, seed=7)
    styles = _rand(2, 2, seed=8)
    noise = _rand(2, 1, 3 * up, 3 * up, seed=9)

    def fn(x, weight, styles, noise):
        return modulated_conv2d.modulated_conv2d(
            x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f, demodulate=demodulate,
            fused_modconv=fused,
        )  # fmt: skip

    _check(fn, (x, weight, styles, noise), fast_mode=True)
