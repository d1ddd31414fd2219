"""Reference ops against independent references: numpy closed forms, scipy.signal and direct loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from medgan_core.ops import bias_act, conv2d_resample, dispatch, modulated_conv2d, upfirdn2d

# ---------------------------------------------------------------------------------------------------------------
# bias_act

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805  # Klambauer et al. 2017


def _np_act(name: str, x: np.ndarray, alpha: float) -> np.ndarray:
    """Closed forms of the activations, written independently of torch."""
    return {
        "linear": lambda: x,
        "relu": lambda: np.maximum(x, 0),
        "lrelu": lambda: np.where(x > 0, x, alpha * x),
        "tanh": lambda: np.tanh(x),
        "sigmoid": lambda: 1 / (1 + np.exp(-x)),
        "elu": lambda: np.where(x > 0, x, np.expm1(x)),
        "selu": lambda: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
        "softplus": lambda: np.log1p(np.exp(x)),
        "swish": lambda: x / (1 + np.exp(-x)),
    }[name]()


# NVIDIA's published defaults (torch_utils/ops/bias_act.py): (alpha, gain).
NVIDIA_DEFAULTS = {
    "linear": (0, 1),
    "relu": (0, math.sqrt(2)),
    "lrelu": (0.2, math.sqrt(2)),
    "tanh": (0, 1),
    "sigmoid": (0, 1),
    "elu": (0, 1),
    "selu": (0, 1),
    "softplus": (0, 1),
    "swish": (0, math.sqrt(2)),
}


def test_activation_table_has_nvidia_defaults():
    assert set(bias_act.activation_funcs) == set(NVIDIA_DEFAULTS)
    for name, (alpha, gain) in NVIDIA_DEFAULTS.items():
        spec = bias_act.activation_funcs[name]
        assert spec.def_alpha == pytest.approx(alpha) and spec.def_gain == pytest.approx(gain), name


@pytest.mark.parametrize("act", sorted(NVIDIA_DEFAULTS))
@pytest.mark.parametrize("dim", [1, 2])
def test_bias_act_matches_closed_form(act, dim):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3)) * 2
    b = rng.normal(size=x.shape[dim])
    shape = [-1 if i == dim else 1 for i in range(x.ndim)]
    alpha, gain = NVIDIA_DEFAULTS[act]
    expected = _np_act(act, x + b.reshape(shape), alpha) * gain
    got = bias_act.bias_act(torch.from_numpy(x), torch.from_numpy(b), dim=dim, act=act, impl="ref")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_bias_act_alpha_gain_clamp_order():
    """clamp applies after the gain: y = clamp(lrelu(x + b, alpha) * gain, -c, c)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4)) * 5
    b = rng.normal(size=4)
    expected = np.clip(_np_act("lrelu", x + b, 0.1) * 3.0, -4.0, 4.0)
    got = bias_act.bias_act(torch.from_numpy(x), torch.from_numpy(b), act="lrelu", alpha=0.1, gain=3.0, clamp=4.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert np.abs(got.numpy()).max() == pytest.approx(4.0)


def test_bias_act_without_bias_and_float32():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    got = bias_act.bias_act(x, act="relu")
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), np.maximum(x.numpy(), 0) * math.sqrt(2), rtol=1e-6)


@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_act_inference_leaves_input_alone(act):
    """Under no_grad the op scales/clamps its own fresh tensor in place, never the caller's."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    before = x.clone()
    with torch.no_grad():
        y = bias_act.bias_act(x, act=act, gain=2.0, clamp=0.5)
    torch.testing.assert_close(x, before, rtol=0, atol=0)
    expected = np.clip(_np_act(act, before.numpy().astype(np.float64), 0.2) * 2.0, -0.5, 0.5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


def test_bias_act_rejects_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act.bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="does not match"):
        bias_act.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match="impl"):
        bias_act.bias_act(x, impl="cuda-plugin")


# ---------------------------------------------------------------------------------------------------------------
# upfirdn2d


def _np_upfirdn2d(x, f, up, down, pad, flip=False, gain=1.0):
    """Direct loop: zero insertion, zero padding (negative crops), true 2-D convolution, decimation."""
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = pad
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    if flip:
        f = f[::-1, ::-1]
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * upy, w * upx))
    u[:, :, ::upy, ::upx] = x
    u = np.pad(u, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[:, :, max(-py0, 0) : u.shape[2] - max(-py1, 0), max(-px0, 0) : u.shape[3] - max(-px1, 0)]
    fh, fw = f.shape
    out_h, out_w = u.shape[2] - fh + 1, u.shape[3] - fw + 1
    y = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            # convolution: output (i, j) sees u[i + a, j + b] * f[fh-1-a, fw-1-b]
            window = u[:, :, i : i + fh, j : j + fw]
            y[:, :, i, j] = (window * f[::-1, ::-1]).sum(axis=(2, 3))
    return y[:, :, ::downy, ::downx] * gain


UPFIRDN_CASES = [
    # (up, down, padding, flip_filter, gain, separable)
    (1, 1, 0, False, 1.0, False),
    (2, 1, (2, 1), False, 1.0, False),
    (1, 2, (1, 1, 1, 1), True, 1.0, False),
    ((2, 1), (1, 2), (3, 2, 1, 0), False, 2.5, False),
    (2, 2, (-1, 2, 1, -1), True, 0.5, False),
    (3, 1, (1, 2, 2, 1), False, 1.0, True),
    (1, 3, (2, 3, 2, 3), True, 4.0, True),
]


@pytest.mark.parametrize("up,down,padding,flip,gain,separable", UPFIRDN_CASES)
def test_upfirdn2d_matches_direct_loop(up, down, padding, flip, gain, separable):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 5, 6))
    taps = rng.uniform(0.5, 2, size=4)
    f = upfirdn2d.setup_filter(taps, separable=separable, normalize=False)
    assert f.ndim == (1 if separable else 2)
    got = upfirdn2d.upfirdn2d(torch.from_numpy(x), f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
    as_xy = [v if isinstance(v, tuple) else (v, v) for v in (up, down)]
    pad = padding if isinstance(padding, tuple) else (padding,) * 2
    pad = pad if len(pad) == 4 else (pad[0], pad[0], pad[1], pad[1])
    expected = _np_upfirdn2d(x, f.numpy().astype(np.float64), *as_xy, pad, flip=flip, gain=gain)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)  # filter taps are float32


def test_upfirdn2d_full_2d_filter_direct_loop():
    """A non-separable random kernel (not an outer product), up 2 down 1."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 2, 4, 5))
    kernel = rng.normal(size=(3, 2))
    f = upfirdn2d.setup_filter(kernel, normalize=False)
    got = upfirdn2d.upfirdn2d(torch.from_numpy(x), f, up=2, padding=(1, 1, 2, 0))
    expected = _np_upfirdn2d(x, f.numpy().astype(np.float64), (2, 2), (1, 1), (1, 1, 2, 0))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (3, 2)])
def test_upfirdn2d_separable_matches_scipy_upfirdn(up, down):
    """Separable filter with full-convolution padding equals scipy.signal.upfirdn along x then y."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 2, 5, 7))
    taps = np.array([1.0, 3.0, 3.0, 1.0, 0.5, 0.25, 2.0, 1.0])  # 8 taps: separable by NVIDIA's rule
    f = upfirdn2d.setup_filter(taps)
    assert f.ndim == 1
    p0, p1 = len(taps) - 1, len(taps) - 1 - (up - 1)
    got = upfirdn2d.upfirdn2d(torch.from_numpy(x), f, up=up, down=down, padding=(p0, p1, p0, p1))
    h = f.numpy().astype(np.float64)
    expected = scipy.signal.upfirdn(h, scipy.signal.upfirdn(h, x, up, down, axis=3), up, down, axis=2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_setup_filter_normalize_flip_gain():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    np.testing.assert_allclose(f.numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
    assert f.dtype == torch.float32
    g = upfirdn2d.setup_filter([1, 2, 3], flip_filter=True, gain=4)
    np.testing.assert_allclose(g.numpy(), np.outer([3, 2, 1], [3, 2, 1]) / 36 * 4, rtol=1e-6)
    s = upfirdn2d.setup_filter([1, 2], separable=True, gain=4)
    np.testing.assert_allclose(s.numpy(), np.array([1, 2]) / 3 * 2, rtol=1e-6)
    assert upfirdn2d.setup_filter(None).shape == (1, 1)


def test_resampling_wrappers_keep_constant_signal():
    """The normalized [1,3,3,1] filter keeps a constant image constant away from the zero-padded border."""
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64)
    up = upfirdn2d.upsample2d(x, f)
    down = upfirdn2d.downsample2d(x, f)
    same = upfirdn2d.filter2d(x, f)
    assert up.shape == (1, 1, 16, 16) and down.shape == (1, 1, 4, 4) and same.shape == x.shape
    np.testing.assert_allclose(up[..., 2:-2, 2:-2].numpy(), 3.0, rtol=1e-6)
    np.testing.assert_allclose(down[..., 1:-1, 1:-1].numpy(), 3.0, rtol=1e-6)
    np.testing.assert_allclose(same[..., 2:-2, 2:-2].numpy(), 3.0, rtol=1e-6)
    assert upfirdn2d.filter2d(x, f, padding=1).shape == (1, 1, 10, 10)


def test_upfirdn2d_rejects_bad_arguments():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="smaller than the filter"):
        upfirdn2d.upfirdn2d(x, torch.ones(6, 6))
    with pytest.raises(ValueError, match=">= 1"):
        upfirdn2d.upfirdn2d(x, None, up=0)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        upfirdn2d.upfirdn2d(x[0], None)


def test_auto_impl_on_cpu_is_the_reference():
    x = torch.randn(1, 1, 4, 4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    ref = upfirdn2d.upfirdn2d(x, f, up=2, padding=2, impl="ref")
    assert dispatch.use_triton("upfirdn2d", "auto", x) is False
    torch.testing.assert_close(upfirdn2d.upfirdn2d(x, f, up=2, padding=2, impl="auto"), ref, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# conv2d_resample and modulated_conv2d


def _np_conv2d_resample(x, w, f, up, down, padding, flip_weight=True):
    """scipy reference: zero insertion, centring pad, FIR filter (x up^2), conv/correlation, decimation."""
    fh, fw = f.shape
    kh, kw = w.shape[2:]
    p = padding
    px0 = py0 = p + ((fw + up - 1) // 2 if up > 1 else 0) + ((fw - down + 1) // 2 if down > 1 else 0)
    px1 = py1 = p + ((fw - up) // 2 if up > 1 else 0) + ((fw - down) // 2 if down > 1 else 0)
    n, c, h, wd = x.shape
    u = np.zeros((n, c, h * up, wd * up))
    u[:, :, ::up, ::up] = x
    u = np.pad(u, ((0, 0), (0, 0), (py0, py1), (px0, px1)))
    if up > 1 or down > 1:
        u = np.stack([[scipy.signal.convolve2d(u[i, j], f, mode="valid") for j in range(c)] for i in range(n)])
        u = u * up**2
    op = scipy.signal.correlate2d if flip_weight else scipy.signal.convolve2d
    out = np.stack(
        [[sum(op(u[i, j], w[o, j], mode="valid") for j in range(c)) for o in range(w.shape[0])] for i in range(n)]
    )
    assert kh == w.shape[2] and kw == w.shape[3]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_matches_scipy(kernel, up, down, flip_weight):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 6, 6))
    w = rng.normal(size=(4, 3, kernel, kernel))
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    got = conv2d_resample.conv2d_resample(
        torch.from_numpy(x), torch.from_numpy(w), f=f, up=up, down=down, padding=kernel // 2, flip_weight=flip_weight
    )
    expected = _np_conv2d_resample(x, w, f.numpy().astype(np.float64), up, down, kernel // 2, flip_weight)
    assert got.shape == (2, 4, 6 * up // down, 6 * up // down)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("up", [1, 2])
def test_conv2d_resample_groups_equal_separate_convolutions(up):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(1, 4, 5, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 3, generator=gen, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    got = conv2d_resample.conv2d_resample(x, w, f=f, up=up, padding=1, groups=2)
    parts = [conv2d_resample.conv2d_resample(x[:, 2 * g : 2 * g + 2], w[3 * g : 3 * g + 3], f=f, up=up, padding=1)
             for g in range(2)]  # fmt: skip
    torch.testing.assert_close(got, torch.cat(parts, dim=1))


def _reference_modconv(x, weight, styles, noise, demodulate, up, f):
    """Per-sample loop: modulate the kernel, demodulate each output channel, convolve, add noise."""
    outs = []
    for n in range(x.shape[0]):
        wn = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            wn = wn / torch.sqrt(wn.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        outs.append(conv2d_resample.conv2d_resample(x[n : n + 1], wn, f=f, up=up, padding=weight.shape[-1] // 2))
    out = torch.cat(outs)
    return out + noise if noise is not None else out


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv2d_matches_per_sample_loop(fused, demodulate, up):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4, 5, 5, generator=gen, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, generator=gen, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    noise = torch.randn(3, 1, 5 * up, 5 * up, generator=gen, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    got = modulated_conv2d.modulated_conv2d(
        x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f, demodulate=demodulate,
        fused_modconv=fused,
    )  # fmt: skip
    expected = _reference_modconv(x, weight, styles, noise, demodulate, up, f)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_demodulated_output_has_unit_variance():
    """Demodulation assumes unit-variance i.i.d. inputs: the output variance is then ~1 for any styles."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(4, 64, 32, 32, generator=gen)
    weight = torch.randn(16, 64, 3, 3, generator=gen)
    styles = torch.rand(4, 64, generator=gen) * 10 + 0.1
    y = modulated_conv2d.modulated_conv2d(x, weight, styles, padding=1)
    inner = y[..., 1:-1, 1:-1]
    assert inner.var().item() == pytest.approx(1.0, rel=0.05)


def test_modulated_conv2d_rejects_mismatched_styles():
    with pytest.raises(ValueError, match="shapes do not agree"):
        modulated_conv2d.modulated_conv2d(torch.zeros(2, 3, 4, 4), torch.zeros(5, 3, 3, 3), torch.zeros(2, 4))
