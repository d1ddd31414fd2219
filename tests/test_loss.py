"""StyleGAN2Loss against closed forms: R1 on a quadratic D, path length on a linear G, logistic losses,
style mixing and the lazy-regularisation scaling of Adam's lr and betas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from medgan_core.loss import StyleGAN2Loss
from medgan_core.networks import Generator
from medgan_core.training.loop import build_phases


class QuadraticD(torch.nn.Module):
    """D(x) = a * sum(x^2): dD/dx = 2 a x, so R1 = 4 a^2 sum(x^2)."""

    def __init__(self, a: float = 0.7):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, img, c, update_emas=False):
        return (self.a * img.square().sum([1, 2, 3]))[:, None]


class LinearG(torch.nn.Module):
    """ws[n, l] = z[n] (+ the layer index, so layers differ); img[n] = sum_l A_l ws[n, l] as [C, H, W]."""

    def __init__(self, z_dim=5, num_ws=3, shape=(1, 4, 4)):
        super().__init__()
        self.z_dim, self.num_ws, self.shape = z_dim, num_ws, shape
        gen = torch.Generator().manual_seed(1)
        self.A = torch.nn.Parameter(
            torch.randn(num_ws, int(np.prod(shape)), z_dim, generator=gen, dtype=torch.float64)
        )
        self.scale = torch.nn.Parameter(torch.ones([], dtype=torch.float64))  # so that ws carries a graph

    def mapping(self, z, c, update_emas=False):
        return z[:, None, :] * self.scale + torch.arange(self.num_ws, dtype=z.dtype)[None, :, None]

    def synthesis(self, ws, update_emas=False):
        return torch.einsum("lpk,nlk->np", self.A, ws).reshape(ws.shape[0], *self.shape)


def test_r1_penalty_and_its_gradient_match_the_closed_form():
    D = QuadraticD(0.7)
    G = LinearG()
    gamma, gain = 3.0, 16
    loss = StyleGAN2Loss("cpu", G, D, r1_gamma=gamma, style_mixing_prob=0, pl_weight=0)
    x = torch.randn(6, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x_req = x.clone().requires_grad_(True)
    penalty = loss.r1_penalty(D(x_req, None), x_req)
    sum_sq = x.square().sum([1, 2, 3])
    torch.testing.assert_close(penalty, 4 * 0.7**2 * sum_sq)

    # the Dreg phase backpropagates gain * mean(gamma / 2 * 4 a^2 sum x^2) into a: d/da = gain * gamma * 4 a mean
    D.zero_grad()
    z = torch.randn(6, G.z_dim, dtype=torch.float64)
    loss.accumulate_gradients("Dreg", x, None, z, None, gain=gain, cur_nimg=0)
    expected = gain * gamma / 2 * 8 * 0.7 * sum_sq.mean()
    torch.testing.assert_close(D.a.grad, expected)


def test_logistic_losses_match_softplus_of_the_logits():
    D, G = QuadraticD(0.3), LinearG()
    reported = {}

    class Recorder:
        def report(self, name, value):
            reported.setdefault(name, []).append(value.detach().clone())

    loss = StyleGAN2Loss("cpu", G, D, r1_gamma=0, style_mixing_prob=0, pl_weight=0, stats=Recorder())
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(4, G.z_dim, dtype=torch.float64, generator=gen)
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64, generator=gen)
    loss.accumulate_gradients("Gmain", x, None, z, None, gain=1, cur_nimg=0)
    fake_logits = 0.3 * G.synthesis(G.mapping(z, None)).square().sum([1, 2, 3])[:, None]
    torch.testing.assert_close(reported["Loss/G/loss"][0], F.softplus(-fake_logits).detach())
    loss.accumulate_gradients("Dmain", x, None, z, None, gain=1, cur_nimg=0)
    real_logits = 0.3 * x.square().sum([1, 2, 3])[:, None]
    expected_D = F.softplus(fake_logits) + F.softplus(-real_logits)
    torch.testing.assert_close(reported["Loss/D/loss"][0], expected_D.detach())


def test_path_length_penalty_matches_the_linear_generator_jacobian():
    G, D = LinearG(), QuadraticD()
    loss = StyleGAN2Loss("cpu", G, D, style_mixing_prob=0, pl_weight=2, pl_decay=0.01)
    z = torch.randn(4, G.z_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    img, ws = loss.run_G(z, None)
    torch.manual_seed(123)
    penalty = loss.path_length_penalty(img, ws)
    torch.manual_seed(123)
    y = torch.randn(img.shape, dtype=torch.float64) / math.sqrt(16)
    # J_w^T y for layer l is A_l^T y (independent of w for a linear G)
    jt_y = torch.einsum("lpk,np->nlk", G.A.detach(), y.reshape(4, -1))
    lengths = jt_y.square().sum(2).mean(1).sqrt()
    target = 0.01 * lengths.mean()  # lerp from 0 with decay 0.01
    torch.testing.assert_close(penalty.detach(), (lengths - target).square())
    assert float(loss.pl_mean) == pytest.approx(float(target), rel=1e-6)


def test_path_length_phase_uses_half_the_batch_and_weight_two():
    G, D = LinearG(), QuadraticD()
    reported = {}

    class Recorder:
        def report(self, name, value):
            reported[name] = value.detach().clone()

    loss = StyleGAN2Loss("cpu", G, D, style_mixing_prob=0, pl_weight=2, stats=Recorder())
    z = torch.randn(8, G.z_dim, dtype=torch.float64)
    loss.accumulate_gradients("Greg", None, None, z, torch.zeros(8, 0), gain=4, cur_nimg=0)
    assert reported["Loss/pl_penalty"].shape[0] == 4
    torch.testing.assert_close(reported["Loss/G/reg"], 2 * reported["Loss/pl_penalty"])
    assert G.A.grad is not None and torch.isfinite(G.A.grad).all()


def test_style_mixing_replaces_the_layers_after_a_cutoff():
    G, D = LinearG(num_ws=6), QuadraticD()
    z = torch.randn(3, G.z_dim, dtype=torch.float64)
    plain = G.mapping(z, None)
    never = StyleGAN2Loss("cpu", G, D, style_mixing_prob=0)
    torch.testing.assert_close(never.run_G(z, None)[1], plain)
    always = StyleGAN2Loss("cpu", G, D, style_mixing_prob=1)
    cutoffs = set()
    for _ in range(60):
        ws = always.run_G(z, None)[1]
        same = (ws == plain).all(dim=2).all(dim=0)  # [num_ws]
        cutoff = int(same.long().sum())
        assert same[:cutoff].all() and not same[cutoff:].any()  # a prefix kept, the rest mixed
        cutoffs.add(cutoff)
    assert cutoffs <= set(range(1, 6)) and len(cutoffs) >= 4


def test_lazy_regularisation_scales_lr_and_betas():
    G, D = LinearG(), QuadraticD()
    config = dict(
        G_opt_kwargs=dict(lr=0.002, betas=[0.9, 0.99], eps=1e-8),
        D_opt_kwargs=dict(lr=0.0025, betas=[0.0, 0.99], eps=1e-8),
        G_reg_interval=4,
        D_reg_interval=16,
    )
    phase_list, optimizers = build_phases(G, D, **config)
    phases = {phase.name: phase for phase in phase_list}
    assert [p.interval for p in phases.values()] == [1, 4, 1, 16]
    g_group = phases["Gmain"].opt.param_groups[0]
    assert g_group["lr"] == pytest.approx(0.002 * 4 / 5)
    assert g_group["betas"] == pytest.approx((0.9**0.8, 0.99**0.8))
    d_group = phases["Dreg"].opt.param_groups[0]
    assert d_group["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert d_group["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert phases["Gmain"].opt is phases["Greg"].opt
    assert optimizers == {"G": phases["Gmain"].opt, "D": phases["Dmain"].opt}  # named, not by phase order


def test_mixed_precision_phases_track_the_float32_gradients(float16_device):
    """Every phase through StyleGAN2 networks with float16 blocks gives finite gradients that point the same way
    as those of the same weights computed in float32 (the --fp32 path)."""
    from medgan_core.networks import Discriminator, Generator

    def networks(num_fp16_res):
        torch.manual_seed(0)
        common = dict(img_resolution=16, img_channels=1, channel_base=64, channel_max=16, num_fp16_res=num_fp16_res)
        G = Generator(z_dim=8, c_dim=0, w_dim=8, mapping_kwargs=dict(num_layers=2), conv_clamp=256, **common)
        D = Discriminator(c_dim=0, conv_clamp=256, **common)
        return G.to(float16_device), D.to(float16_device)

    gen = torch.Generator().manual_seed(7)
    real = torch.randn(4, 1, 16, 16, generator=gen).to(float16_device)
    z = torch.randn(4, 8, generator=gen).to(float16_device)
    c = torch.zeros(4, 0, device=float16_device)
    gradients = {}
    for num_fp16_res in (2, 0):
        G, D = networks(num_fp16_res)
        loss = StyleGAN2Loss(float16_device, G, D, r1_gamma=1, style_mixing_prob=0, pl_weight=2)
        for phase in ("Gmain", "Greg", "Dmain", "Dreg"):
            G.zero_grad(set_to_none=True)
            D.zero_grad(set_to_none=True)
            torch.manual_seed(1)  # the same noise inputs and path-length directions for both precisions
            loss.accumulate_gradients(phase, real, c, z, c, gain=1, cur_nimg=0)
            net = G if phase.startswith("G") else D
            grads = [p.grad.flatten() for p in net.parameters() if p.grad is not None]
            gradients[num_fp16_res, phase] = torch.cat(grads).double().cpu()
    assert G.synthesis.b16.use_fp16 is False and networks(2)[0].synthesis.b16.use_fp16 is True
    for phase in ("Gmain", "Greg", "Dmain", "Dreg"):
        mixed, full = gradients[2, phase], gradients[0, phase]
        assert torch.isfinite(mixed).all(), phase
        assert F.cosine_similarity(mixed, full, dim=0) > 0.999, phase
        assert not torch.equal(mixed, full), phase  # float16 did run


class ConvolutionBackwardLog(TorchDispatchMode):
    """Records the output mask (input, weight, bias) of every convolution backward run while it is active."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution_backward.default:
            self.masks.append(tuple(args[-1]))
        return func(*args, **(kwargs or {}))


def test_path_length_pass_computes_no_conv_weight_gradient():
    """NVIDIA's pl_no_weight_grad, built in: differentiating the images w.r.t. ws asks every convolution of G for
    its input gradient only (no weight gradient), while the penalty's backward still reaches the conv weights."""
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=1, channel_base=64, channel_max=8,
                  mapping_kwargs=dict(num_layers=1), num_fp16_res=0,
                  fused_modconv_default="inference_only")  # fmt: skip
    G.train().requires_grad_(True)  # training: non-fused modulation, so the conv weights are the parameters
    loss = StyleGAN2Loss("cpu", G, None, style_mixing_prob=0, pl_weight=2)
    z = torch.randn([4, 8], generator=torch.Generator().manual_seed(0))
    gen_img, gen_ws = loss.run_G(z, torch.zeros([4, 0]))
    with ConvolutionBackwardLog() as log:
        penalty = loss.path_length_penalty(gen_img, gen_ws)
    assert len(log.masks) >= 4  # G's modulated convolutions (and toRGB) were differentiated
    assert all(mask[0] and not mask[1] for mask in log.masks), log.masks
    penalty.sum().backward()
    conv_weights = [p for name, p in G.synthesis.named_parameters() if name.endswith("conv1.weight")]
    assert conv_weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in conv_weights)
