"""Generator behaviour at tiny sizes: architectures, conditioning, truncation, w_avg tracking, noise, mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan_core.networks import Generator, MappingNetwork, SynthesisBlock
from medgan_core.ops import dispatch, winograd

TINY = dict(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=8, num_fp16_res=0)


def _tiny_generator(seed=0, **kwargs):
    torch.manual_seed(seed)
    return Generator(**{**TINY, "c_dim": 0, "mapping_kwargs": dict(num_layers=2), **kwargs})


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_architectures_shapes_and_layers(architecture):
    G = _tiny_generator(architecture=architecture)
    z = torch.randn(3, 8)
    img = G(z, None, noise_mode="const")
    assert img.shape == (3, 1, 16, 16) and img.dtype == torch.float32 and torch.isfinite(img).all()
    # num_ws: 1 conv at 4x4 + 2 per further block + the last toRGB
    assert G.num_ws == 1 + 2 * 2 + 1
    names = set(G.state_dict())
    assert ("synthesis.b8.torgb.weight" in names) == (architecture == "skip")
    assert ("synthesis.b8.skip.weight" in names) == (architecture == "resnet")
    assert "synthesis.b16.torgb.weight" in names


def test_noise_modes():
    G = _tiny_generator()
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    ws = G.mapping(torch.randn(2, 8), None)
    const_a = G.synthesis(ws, noise_mode="const")
    const_b = G.synthesis(ws, noise_mode="const")
    none = G.synthesis(ws, noise_mode="none")
    torch.manual_seed(1)
    rand_a = G.synthesis(ws, noise_mode="random")
    torch.manual_seed(1)
    rand_b = G.synthesis(ws, noise_mode="random")
    rand_c = G.synthesis(ws, noise_mode="random")
    torch.testing.assert_close(const_a, const_b, rtol=0, atol=0)
    torch.testing.assert_close(rand_a, rand_b, rtol=0, atol=0)
    assert (const_a - none).abs().max() > 1e-3 and (rand_a - rand_c).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


def test_fused_and_unfused_agree_and_default():
    G = _tiny_generator(fused_modconv_default="inference_only")
    ws = G.mapping(torch.randn(2, 8), None)
    fused = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    unfused = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-5)
    assert G.synthesis.b4.fused_modconv_default == "inference_only"


def test_truncation_closed_form():
    """w' = w_avg + psi (w - w_avg), on all ws or the first `truncation_cutoff`."""
    G = _tiny_generator()
    G.mapping.w_avg.copy_(torch.randn(8))
    z = torch.randn(3, 8)
    ws = G.mapping(z, None)
    w_avg = G.mapping.w_avg
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0.6), w_avg + 0.6 * (ws - w_avg))
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0), w_avg.expand_as(ws))
    cut = G.mapping(z, None, truncation_psi=0.3, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], w_avg + 0.3 * (ws[:, :2] - w_avg))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


def test_w_avg_tracking():
    G = _tiny_generator()
    before = torch.randn(8)
    G.mapping.w_avg.copy_(before)
    z = torch.randn(5, 8)
    ws = G.mapping(z, None, update_emas=True)
    torch.testing.assert_close(G.mapping.w_avg, ws[:, 0].mean(0) + 0.998 * (before - ws[:, 0].mean(0)))
    G.mapping(z, None)
    G(z, None, update_emas=False)
    torch.testing.assert_close(G.mapping.w_avg, ws[:, 0].mean(0) + 0.998 * (before - ws[:, 0].mean(0)))


def test_style_mixing_uses_per_layer_ws():
    """Changing only the last ws (the toRGB of the last block) changes the image; ws are consumed per layer."""
    G = _tiny_generator()
    ws = G.mapping(torch.randn(2, 8), None)
    mixed = ws.clone()
    mixed[:, -1] = G.mapping(torch.randn(2, 8), None)[:, 0]
    a = G.synthesis(ws, noise_mode="const")
    b = G.synthesis(mixed, noise_mode="const")
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="ws"):
        G.synthesis(ws[:, :-1])


def test_conditioning():
    G = _tiny_generator(c_dim=3)
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn(2, 8)
    c0 = torch.nn.functional.one_hot(torch.tensor([0, 0]), 3).float()
    c1 = torch.nn.functional.one_hot(torch.tensor([1, 1]), 3).float()
    assert (G(z, c0, noise_mode="const") - G(z, c1, noise_mode="const")).abs().max() > 1e-4
    with pytest.raises(ValueError, match="c must have shape"):
        G(z, torch.zeros(2, 4))


def test_same_seed_same_weights_and_images():
    a, b = _tiny_generator(seed=3), _tiny_generator(seed=3)
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 8))).float()
    torch.testing.assert_close(a(z, None, noise_mode="const"), b(z, None, noise_mode="const"), rtol=0, atol=0)


def test_mapping_network_options():
    m = MappingNetwork(z_dim=4, c_dim=2, w_dim=6, num_ws=None, num_layers=3, embed_features=5, layer_features=7)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["embed.weight"] == (5, 2) and shapes["fc0.weight"] == (7, 9) and shapes["fc2.weight"] == (6, 7)
    assert "w_avg" in MappingNetwork(4, 0, 6, num_ws=2).state_dict()
    assert m(torch.randn(3, 4), torch.randn(3, 2)).shape == (3, 6)


def test_fp16_blocks_stay_float32_on_cpu():
    G = _tiny_generator(num_fp16_res=2, conv_clamp=256)
    assert G.synthesis.b16.use_fp16 and G.synthesis.b8.use_fp16 and not G.synthesis.b4.use_fp16
    seen = {}
    G.synthesis.b16.conv1.register_forward_hook(lambda module, args, out: seen.update(b16=out.dtype))
    assert G(torch.randn(2, 8), None).dtype == torch.float32
    assert seen == {"b16": torch.float32}  # float16 only on CUDA by default, as NVIDIA


def test_synthesis_block_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="architecture"):
        SynthesisBlock(0, 8, w_dim=8, resolution=4, img_channels=1, is_last=True, architecture="unet")


def test_fp16_blocks_compute_in_float16_close_to_fp32(float16_device):
    """float16 blocks (reference ops) really run in float16, stay close to the float32 result, return float32."""
    G = _tiny_generator(num_fp16_res=2, conv_clamp=256).to(float16_device)
    z = torch.randn(2, 8, device=float16_device)
    seen = {}
    G.synthesis.b16.conv1.register_forward_hook(lambda module, args, out: seen.update(b16=out.dtype))
    G.synthesis.b4.conv1.register_forward_hook(lambda module, args, out: seen.update(b4=out.dtype))
    with dispatch.prefer("ref"):
        fp16 = G(z, None, noise_mode="const")
        assert seen == {"b16": torch.float16, "b4": torch.float32}
        fp32 = G(z, None, noise_mode="const", force_fp32=True)
        assert seen == {"b16": torch.float32, "b4": torch.float32}
    assert fp16.dtype == torch.float32
    assert (fp16 - fp32).abs().max().item() < 0.05 * fp32.abs().max().item()
    assert (fp16 - fp32).abs().max().item() > 0  # the two paths did differ: float16 rounding is visible


@pytest.mark.parametrize(
    "architecture, convolutions",
    [("orig", "by shape"), ("skip", "by shape"), ("resnet", "by shape"), ("skip", "winograd")],
)
def test_cpu_inference_path_matches_the_autograd_path(architecture, convolutions, monkeypatch):
    """Without autograd on the CPU, G runs channels-last with `modulated_conv2d_bias_act`: the same images as the
    path training uses (NVIDIA's formulation), to float32 rounding, for every noise mode; hooked outputs intact.
    The Winograd convolutions (chosen by shape, for wider layers than these) are forced once."""
    calls = []
    if convolutions == "winograd":
        monkeypatch.setattr(winograd, "pays", lambda *shape: True)
    original = winograd.conv3x3
    monkeypatch.setattr(winograd, "conv3x3", lambda *args: calls.append(args[0].shape) or original(*args))
    G = _tiny_generator(architecture=architecture, channel_max=16, conv_clamp=0.5)  # a clamp that bites
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.4)
    z = torch.randn(3, 8)
    seen = {}
    G.synthesis.b16.conv0.register_forward_hook(lambda module, args, out: seen.update(out=out.clone(), kept=out))
    G.synthesis.b8.register_forward_hook(lambda module, args, out: seen.update(x8=out[0].clone(), x8_kept=out[0]))
    for noise_mode in ("const", "none", "random"):
        torch.manual_seed(3)
        want = G(z, None, noise_mode=noise_mode)
        assert want.requires_grad  # the autograd path
        with torch.no_grad():
            torch.manual_seed(3)
            got = G(z, None, noise_mode=noise_mode)
        torch.testing.assert_close(seen["kept"], seen["out"], rtol=0, atol=0)  # conv1 did not scale it in place
        torch.testing.assert_close(seen["x8_kept"], seen["x8"], rtol=0, atol=0)  # nor b16.conv0 its hooked input
        assert got.is_contiguous() and got.dtype == torch.float32
        torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-5)
        assert (got - G(z, None, noise_mode="none").detach()).abs().max() > 0 or noise_mode == "none"
    assert bool(calls) == (convolutions == "winograd")  # the forced path ran; none of these layers picks it
