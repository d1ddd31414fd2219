"""Winograd F(4x4, 3x3) convolution against `conv2d` in float64 (the closed-form reference)."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

from medgan_core.ops import winograd


def _case(batch, in_channels, out_channels, height, width, seed=0, channels_last=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, height, width, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(out_channels, in_channels, 3, 3, generator=gen) / (in_channels * 9) ** 0.5
    return x, weight


@pytest.mark.parametrize(
    "shape, channels_last",
    [((2, 64, 48, 8, 8), True), ((3, 5, 7, 4, 12), True), ((2, 32, 32, 16, 16), False), ((1, 256, 256, 8, 8), True)],
)
def test_matches_conv2d(shape, channels_last):
    x, weight = _case(*shape, channels_last=channels_last)
    want = F.conv2d(x.double(), weight.double(), padding=1)
    got = winograd.conv3x3(x, winograd.kernel_transform(weight))
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    assert _relative_error(got, want) < 2e-5  # float32 rounding, ~1e-5 here (the direct convolution's: ~1e-6)


def _relative_error(got, want):
    return ((got.double() - want).abs().max() / want.abs().max()).item()


def test_large_batches_run_in_chunks_with_the_same_result(monkeypatch):
    x, weight = _case(5, 16, 8, 8, 8)
    transformed = winograd.kernel_transform(weight)
    whole = winograd.conv3x3(x, transformed)
    passes = []
    original = winograd._tiles_conv
    monkeypatch.setattr(winograd, "_tiles_conv", lambda *args: passes.append(args[0].shape[0]) or original(*args))
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 2 * 36 * 2 * 2 * 16 * 4)  # two samples' tiles per pass
    chunked = winograd.conv3x3(x, transformed)
    assert passes == [2, 2, 1]
    want = F.conv2d(x.double(), weight.double(), padding=1)
    assert _relative_error(chunked, want) < 2e-5 and _relative_error(whole, want) < 2e-5


def test_rejects_sizes_that_are_not_whole_tiles():
    x, weight = _case(1, 4, 4, 6, 8)
    with pytest.raises(ValueError, match="do not fit"):
        winograd.conv3x3(x, winograd.kernel_transform(weight))
    assert not winograd.pays(512, 512, 6, 8)


def test_kernel_transform_is_cached_per_weight_version():
    x, weight = _case(2, 8, 8, 8, 8)
    first = winograd.cached_kernel_transform(weight)
    assert winograd.cached_kernel_transform(weight) is first
    weight.mul_(-2)  # an in-place change (an optimiser step, load_state_dict) makes it stale
    again = winograd.cached_kernel_transform(weight)
    assert again is not first
    want = F.conv2d(x.double(), weight.double(), padding=1)
    assert _relative_error(winograd.conv3x3(x, again), want) < 2e-5
    entries = len(winograd._kernel_cache)
    del weight
    gc.collect()
    assert len(winograd._kernel_cache) == entries - 1  # dropped with its tensor
