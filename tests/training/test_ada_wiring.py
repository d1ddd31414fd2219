"""ADA inside the loop: D's real-logit signs reach the controller and move the pipe's p (up when D is
over-confident on reals, down otherwise, never below 0), with NVIDIA's step batch * interval / (ada_kimg * 1000)."""

from __future__ import annotations

import pytest
import torch

from medgan_core.training import loop as loop_module
from medgan_core.training.options import TrainOptions, build_config


class ScriptedD(torch.nn.Module):
    """A discriminator whose logits are a fixed value (with a zero-gradient parameter for the optimiser)."""

    def __init__(self, logit: float):
        super().__init__()
        self.logit = logit
        self.init_kwargs = dict(logit=logit)
        self.w = torch.nn.Parameter(torch.zeros([]))

    def forward(self, img, c, update_emas=False):
        return self.logit + self.w * 0 * img.mean([1, 2, 3])[:, None]


@pytest.mark.parametrize("logit, p0", [(3.0, 0.0), (-3.0, 0.07)])
def test_p_follows_the_sign_of_real_logits(tmp_path, monkeypatch, discs32, logit, p0):
    real_build = loop_module.build_networks

    def build_with_scripted_d(*args, **kwargs):
        G, _D, G_ema = real_build(*args, **kwargs)
        return G, ScriptedD(logit), G_ema

    monkeypatch.setattr(loop_module, "build_networks", build_with_scripted_d)
    monkeypatch.setattr(loop_module, "save_snapshot", lambda *a, **k: None)
    torch.set_num_threads(1)
    opts = TrainOptions(
        outdir=str(tmp_path),
        data=str(discs32),
        batch=8,
        kimg=0.1,
        tick=1,
        cbase=512,
        cmax=16,
        map=1,
        metrics="none",
        workers=0,
        gamma=1,
    )
    config = build_config(opts, num_channels=1, resolution=32, label_dim=0)
    config.update(augment_p=p0, ada_kimg=1)  # step 8 * 4 / 1000 = 0.032 per update
    seen = []
    real_step = None

    def spy(ada):
        nonlocal real_step
        real_step = ada.step

        def step():
            result = real_step()
            if result is not None:
                seen.append(result)
            return result

        ada.step = step

    real_build_augment = loop_module.build_augment

    def build_augment(*args, **kwargs):
        pipe, ada = real_build_augment(*args, **kwargs)
        spy(ada)
        return pipe, ada

    monkeypatch.setattr(loop_module, "build_augment", build_augment)
    loop_module.training_loop(**dict(config, run_dir=str(tmp_path), device="cpu"), progress_fn=lambda *a: None)
    iterations = 13  # 100 images / batch 8, rounded up
    assert len(seen) == iterations // 4
    step = 8 * 4 / 1000
    expected = [max(p0 + (k + 1) * step * (1 if logit > 0 else -1), 0.0) for k in range(len(seen))]
    assert seen == pytest.approx(expected, abs=1e-6)
    assert min(seen) >= 0
