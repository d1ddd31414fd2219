"""First and second derivatives through both networks in float64 (after `.double()`), as R1 and path-length
regularisation need them. Torch's fast gradcheck mode (random Jacobian projections) keeps this within budget.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from medgan_core.networks import Discriminator, Generator

TINY = dict(img_resolution=8, img_channels=1, channel_base=16, channel_max=2, num_fp16_res=0)


def _check(fn, inputs):
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("architecture,fused", [("skip", True), ("orig", False), ("resnet", False)])
def test_generator_gradients(architecture, fused):
    torch.manual_seed(0)
    G = Generator(
        z_dim=3, c_dim=2, w_dim=3, mapping_kwargs=dict(num_layers=2), architecture=architecture, conv_clamp=256,
        **TINY,
    ).double()  # fmt: skip
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.3)
    z = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    _check(lambda z, c: G(z, c, noise_mode="const", fused_modconv=fused), (z, c))


def test_generator_weight_gradients():
    """Gradient with respect to a synthesis weight (what the optimiser and path-length need)."""
    torch.manual_seed(1)
    G = Generator(z_dim=3, c_dim=0, w_dim=3, mapping_kwargs=dict(num_layers=1), **TINY).double()
    synthesis = G.synthesis
    state = dict(synthesis.named_parameters())
    ws = torch.randn(2, G.num_ws, 3, dtype=torch.float64)

    def fn(weight):
        tensors = {**state, "b8.conv0.weight": weight}
        return torch.func.functional_call(synthesis, tensors, (ws,), dict(noise_mode="none"))

    _check(fn, (state["b8.conv0.weight"].detach().clone().requires_grad_(True),))


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_discriminator_gradients(architecture):
    torch.manual_seed(2)
    D = Discriminator(c_dim=2, architecture=architecture, conv_clamp=256, **TINY).double()
    img = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 2, dtype=torch.float64)
    _check(lambda img: D(img, c), (img,))
