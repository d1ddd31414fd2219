"""The CPU training step's speed-ups (issue 27) against the reference path: same losses, same gradients.

Each speed-up is a module-level switch; off, the step runs as before (NCHW activations, FIR filters of one-channel
images as one-channel convolutions, bias, activation and gain by `bias_act`, D's fakes drawn with autograd on).
Every phase of a training iteration (Gmain, Greg, Dmain, Dreg) through the
augment pipe (every geometric transform, p = 1) runs once with the switches off and once on, from the same
weights and random state; the reported losses and every parameter's gradient must agree: to float64 rounding at
float64, to float32 rounding at float32.
"""

from __future__ import annotations

import copy

import pytest
import torch

from medgan_core import loss as loss_module
from medgan_core.augment import AugmentPipe, augpipe_specs
from medgan_core.loss import StyleGAN2Loss
from medgan_core.networks import Discriminator, Generator, layers
from medgan_core.ops import upfirdn2d

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


class _Reports:
    def __init__(self):
        self.values: dict[str, list[torch.Tensor]] = {}

    def report(self, name, value):
        self.values.setdefault(name, []).append(torch.as_tensor(value).detach().clone())


def _nets(dtype, resolution=16):
    torch.manual_seed(0)
    common = dict(c_dim=0, img_resolution=resolution, img_channels=1, channel_base=512, channel_max=32,
                  num_fp16_res=0, conv_clamp=None)  # fmt: skip
    G = Generator(z_dim=32, w_dim=32, mapping_kwargs=dict(num_layers=2), fused_modconv_default="inference_only",
                  **common).train().to(dtype)  # fmt: skip
    D = Discriminator(epilogue_kwargs=dict(mbstd_group_size=4), **common).train().to(dtype)
    pipe = AugmentPipe(**augpipe_specs["bg"]).train().to(dtype)
    pipe.p.fill_(1.0)
    return G, D, pipe


def _step(G, D, pipe, dtype, switched: bool, monkeypatch):
    monkeypatch.setattr(layers, "CPU_CHANNELS_LAST", switched)
    monkeypatch.setattr(upfirdn2d, "FOLD_CHANNELS", 4 if switched else 0)
    monkeypatch.setattr(layers, "CPU_FOLD_EPILOGUE", switched)
    monkeypatch.setattr(loss_module, "G_FAKES_WITHOUT_AUTOGRAD", switched)
    G, D, pipe = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(pipe)
    reports = _Reports()
    loss = StyleGAN2Loss("cpu", G, D, augment_pipe=pipe, r1_gamma=0.5, stats=reports)
    gen = torch.Generator().manual_seed(1)
    real = torch.rand([8, 1, 16, 16], generator=gen, dtype=dtype) * 2 - 1
    z = torch.randn([8, 32], generator=gen, dtype=dtype)
    c = torch.zeros([8, 0], dtype=dtype)
    grads = {}
    torch.manual_seed(2)  # noise, style mixing and augmentation draws
    for phase in PHASES:
        module = G if phase.startswith("G") else D
        module.requires_grad_(True)
        module.zero_grad(set_to_none=True)
        loss.accumulate_gradients(phase, real, c, z, c, gain=4, cur_nimg=0)
        module.requires_grad_(False)
        for name, param in module.named_parameters():
            if param.grad is not None:
                grads[f"{phase}/{name}"] = param.grad.detach().clone()
    return reports.values, grads, float(loss.pl_mean)


@pytest.mark.parametrize("dtype, rtol, atol", [(torch.float64, 1e-9, 1e-12), (torch.float32, 2e-4, 2e-6)])
def test_the_fast_cpu_step_matches_the_reference_step(dtype, rtol, atol, monkeypatch):
    G, D, pipe = _nets(dtype)
    ref_reports, ref_grads, ref_pl = _step(G, D, pipe, dtype, False, monkeypatch)
    got_reports, got_grads, got_pl = _step(G, D, pipe, dtype, True, monkeypatch)
    assert set(got_reports) == set(ref_reports) and set(got_grads) == set(ref_grads)
    assert any(name.startswith("Greg/") for name in ref_grads) and any(name.startswith("Dreg/") for name in ref_grads)
    for name in ref_reports:
        for got, want in zip(got_reports[name], ref_reports[name], strict=True):
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")
    for name, want in ref_grads.items():
        scale = want.abs().max().item()
        torch.testing.assert_close(got_grads[name], want, rtol=rtol, atol=atol * max(scale, 1.0),
                                   msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip
    assert got_pl == pytest.approx(ref_pl, rel=rtol, abs=atol)


def test_folded_fir_matches_the_per_channel_filter(monkeypatch):
    """upfirdn2d with the batch folded into the channels (few channels) gives the per-channel result."""
    gen = torch.Generator().manual_seed(0)
    for channels in (1, 3):
        x = torch.randn([5, channels, 13, 11], generator=gen, dtype=torch.float64)
        for f, kwargs in [
            (upfirdn2d.setup_filter([1, 3, 3, 1]), dict(up=2, padding=[2, 1, 2, 1], gain=4)),
            (
                upfirdn2d.setup_filter(torch.rand(12, generator=gen)),
                dict(down=2, padding=[4, 3, 5, 2], flip_filter=True),
            ),
            (upfirdn2d.setup_filter(torch.rand(12, generator=gen)), dict(up=2, padding=5)),
        ]:
            monkeypatch.setattr(upfirdn2d, "FOLD_CHANNELS", 0)
            want = upfirdn2d.upfirdn2d(x, f, **kwargs, impl="ref")
            monkeypatch.setattr(upfirdn2d, "FOLD_CHANNELS", 4)
            got = upfirdn2d.upfirdn2d(x, f, **kwargs, impl="ref")
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
