"""Discriminator behaviour at tiny sizes: architectures, minibatch std, projection conditioning, freeze_layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan_core.networks import Discriminator, MinibatchStdLayer
from medgan_core.ops import dispatch

TINY = dict(img_resolution=16, img_channels=1, channel_base=64, channel_max=8, num_fp16_res=0)


def _tiny_discriminator(seed=0, **kwargs):
    torch.manual_seed(seed)
    return Discriminator(**{**TINY, "c_dim": 0, **kwargs})


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_architectures(architecture):
    D = _tiny_discriminator(architecture=architecture)
    logits = D(torch.randn(4, 1, 16, 16), None)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    names = set(D.state_dict())
    assert ("b8.fromrgb.weight" in names) == (architecture == "skip")
    assert ("b4.fromrgb.weight" in names) == (architecture == "skip")
    assert ("b16.skip.weight" in names) == (architecture == "resnet")
    assert "b16.fromrgb.weight" in names


def test_minibatch_std_closed_form():
    """Group i holds samples i, i + n, i + 2n, ...; the feature is the mean over channels and pixels of the
    per-group standard deviation (population, eps 1e-8)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4, 3, 3))
    layer = MinibatchStdLayer(group_size=3, num_channels=2)
    out = layer(torch.from_numpy(x)).numpy()
    assert out.shape == (6, 6, 3, 3)
    np.testing.assert_array_equal(out[:, :4], x)
    n = 6 // 3
    for i in range(6):
        group = x[(i % n) :: n]  # the 3 samples that share sample i's group
        for f in range(2):
            chans = group[:, 2 * f : 2 * f + 2]
            expected = np.sqrt(chans.var(axis=0) + 1e-8).mean()
            np.testing.assert_allclose(out[i, 4 + f], expected, rtol=1e-12)


def test_minibatch_std_group_larger_than_batch_and_bad_batch():
    x = torch.randn(2, 3, 2, 2)
    out = MinibatchStdLayer(group_size=4)(x)
    expected = (x.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(out[:, 3], expected.expand(2, 2, 2))
    with pytest.raises(ValueError, match="divisible"):
        MinibatchStdLayer(group_size=4)(torch.randn(6, 3, 2, 2))


def test_conditioning_by_projection():
    """logit = <out(x), cmap(c)> / sqrt(cmap_dim): linear in the projected output."""
    D = _tiny_discriminator(c_dim=3, cmap_dim=5)
    assert D.b4.out.weight.shape == (5, 8) and "mapping.fc0.weight" in D.state_dict()
    assert "w_avg" not in " ".join(D.state_dict())
    img = torch.randn(4, 1, 16, 16)
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    logits = D(img, c)
    captured = {}
    D.b4.out.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    D(img, c)
    cmap = D.mapping(None, c)
    expected = (captured["out"] * cmap).sum(dim=1, keepdim=True) / np.sqrt(5)
    torch.testing.assert_close(logits, expected)
    assert (D(img, c.roll(1, dims=1)) - logits).abs().max() > 1e-5


def test_default_cmap_dim_is_channels_at_4x4():
    D = _tiny_discriminator(c_dim=2)
    assert D.b4.cmap_dim == min(64 // 4, 8)


@pytest.mark.parametrize("freeze_layers", [0, 2, 5])
def test_freeze_layers(freeze_layers):
    """The first `freeze_layers` layers (counted from the highest resolution) become buffers; names stay."""
    D = _tiny_discriminator(block_kwargs=dict(freeze_layers=freeze_layers))
    reference = _tiny_discriminator()
    assert sorted(D.state_dict()) == sorted(reference.state_dict())  # buffers list after parameters
    order = ["b16.fromrgb", "b16.conv0", "b16.conv1", "b16.skip", "b8.conv0", "b8.conv1", "b8.skip"]
    params = {name for name, _ in D.named_parameters()}
    for index, layer in enumerate(order):
        assert (f"{layer}.weight" in params) == (index >= freeze_layers), layer
    assert "b4.conv.weight" in params
    img = torch.randn(2, 1, 16, 16, requires_grad=True)
    D(img, None).sum().backward()
    assert img.grad is not None and img.grad.abs().max() > 0


def test_fp16_blocks_stay_float32_on_cpu():
    D = _tiny_discriminator(num_fp16_res=2, conv_clamp=256)
    assert D.b16.use_fp16 and D.b8.use_fp16
    assert D(torch.randn(2, 1, 16, 16), None).dtype == torch.float32


def test_init_kwargs_rebuild():
    D = _tiny_discriminator(architecture="skip", c_dim=2, epilogue_kwargs=dict(mbstd_group_size=2))
    rebuilt = Discriminator(**D.init_kwargs)
    rebuilt.load_state_dict(D.state_dict(), strict=True)
    img, c = torch.randn(2, 1, 16, 16), torch.eye(2)
    torch.testing.assert_close(rebuilt(img, c), D(img, c), rtol=0, atol=0)


def test_fp16_blocks_and_r1_double_backward(float16_device):
    """float16 blocks really run in float16, stay close to float32, and R1's gradient-of-gradient runs through
    them."""
    D = _tiny_discriminator(num_fp16_res=2, conv_clamp=256).to(float16_device)
    img = torch.randn(4, 1, 16, 16, device=float16_device, requires_grad=True)
    seen = {}
    D.b16.conv1.register_forward_hook(lambda module, args, out: seen.update(b16=out.dtype))
    with dispatch.prefer("ref"):
        fp16 = D(img, None)
        assert seen == {"b16": torch.float16}
        fp32 = D(img, None, force_fp32=True)
        assert seen == {"b16": torch.float32}
        assert fp16.dtype == torch.float32
        assert (fp16 - fp32).abs().max().item() < 0.05 * fp32.abs().max().item() + 1e-3
        (grad,) = torch.autograd.grad(fp16.sum(), img, create_graph=True)
        grad.square().sum().backward()
    # every parameter but the output bias (a constant offset of the logits) shapes the input gradient
    for name, p in D.named_parameters():
        assert (p.grad is None) == (name == "b4.out.bias"), name
        assert p.grad is None or torch.isfinite(p.grad).all(), name
