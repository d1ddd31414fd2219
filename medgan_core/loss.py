"""The StyleGAN2 training objective: non-saturating logistic loss, R1, path-length regularisation, style mixing.

Karras et al. 2020 (StyleGAN2) with the lazy regularisation of NVIDIA's code: the trainer runs the phases
'Gmain' and 'Dmain' every step and 'Greg' / 'Dreg' every `G_reg_interval` / `D_reg_interval` steps, passing
`gain` = the phase interval so that a lazily applied penalty has the same expected weight as an every-step one.

- G: softplus(-D(G(z)))                       (non-saturating logistic)
- D: softplus(D(G(z))) + softplus(-D(x))      (logistic)
- R1: gamma / 2 * ||d D(x) / d x||^2           on reals (x through the augment pipe, as D sees it)
- Path length: (||J_w^T y||_2 - a)^2 * pl_weight, y ~ N(0, I) / sqrt(H * W), a an exponential moving average of
  the lengths (decay pl_decay), on a batch shrunk by pl_batch_shrink; J_w the Jacobian of the image w.r.t. ws.
- Style mixing: with probability style_mixing_prob, ws from a second z replace those after a random cutoff.

NVIDIA's `pl_no_weight_grad` (its custom conv op skips the conv weight gradient while the path-length pass
differentiates the image w.r.t. ws) has no counterpart here because PyTorch's own convolutions already skip it:
with G's training configuration (modulation outside the convolution, fused_modconv_default='inference_only'),
`torch.autograd.grad(..., inputs=[ws])` asks convolution_backward for the input gradient only (checked in
tests/test_loss.py). The second-order weight gradients of the penalty flow as in NVIDIA's code.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

# D's phase draws its fakes without autograd (G's weights get no gradient there): on CPUs G then runs its inference
# path (channels-last, one pass for noise, bias, activation and gain). Tests set it to False for the reference path.
G_FAKES_WITHOUT_AUTOGRAD = True


class StyleGAN2Loss:
    """Losses of G and D for one training phase at a time (NVIDIA's `StyleGAN2Loss` interface).

    G, D:              the networks being trained (G with .mapping / .synthesis).
    augment_pipe:      applied to every image D sees (reals and fakes), or None.
    r1_gamma:          R1 weight gamma (--gamma); 0 disables R1.
    style_mixing_prob: 0.9 in the StyleGAN2 configuration.
    pl_weight:         2 in the StyleGAN2 configuration; 0 disables path-length regularisation.
    pl_batch_shrink:   path length is computed on batch // 2 images.
    pl_decay:          0.01, the EMA decay of the target length.
    stats:             optional StatsCollector-like object with report(name, tensor).
    """

    def __init__(
        self,
        device,
        G,
        D,
        augment_pipe=None,
        r1_gamma: float = 10,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 2,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        stats=None,
        ada=None,
    ):
        self.device = torch.device(device)
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        self.pl_mean = torch.zeros([], device=self.device)  # running target length a
        self.stats, self.ada = stats, ada

    def _report(self, name: str, value: torch.Tensor) -> None:
        if self.stats is not None:
            self.stats.report(name, value)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False):
        """z [N, z_dim], c [N, c_dim] -> (img [N, C, H, W], ws [N, num_ws, w_dim])."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            with torch.autograd.profiler.record_function("style_mixing"):
                cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, ws.shape[1])
                mix = torch.rand([], device=ws.device) < self.style_mixing_prob
                cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, ws.shape[1]))
                ws_mix = self.G.mapping(torch.randn_like(z), c, update_emas=False)
                layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
                ws = torch.where(layer < cutoff, ws, ws_mix)
        img = self.G.synthesis(ws, update_emas=update_emas)
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, update_emas: bool = False):
        """img [N, C, H, W] in [-1, 1] -> logits [N, 1], through the augment pipe when there is one."""
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c, update_emas=update_emas)

    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gen_z: torch.Tensor,
        gen_c: torch.Tensor,
        gain: float,
        cur_nimg: int,
    ) -> None:
        """Backpropagate the loss of `phase` ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth') times `gain`.

        `cur_nimg` is part of NVIDIA's interface (StyleGAN3 fades a blur of D's inputs with it); StyleGAN2 has none."""
        assert phase in ["Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth"]
        if self.pl_weight == 0:
            phase = {"Greg": "none", "Gboth": "Gmain"}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {"Dreg": "none", "Dboth": "Dmain"}.get(phase, phase)

        if phase in ["Gmain", "Gboth"]:  # G: make D call fakes real
            gen_img, _ = self.run_G(gen_z, gen_c)
            gen_logits = self.run_D(gen_img, gen_c)
            self._report("Loss/scores/fake", gen_logits)
            self._report("Loss/signs/fake", gen_logits.sign())
            loss_Gmain = F.softplus(-gen_logits)
            self._report("Loss/G/loss", loss_Gmain)
            loss_Gmain.mean().mul(gain).backward()

        if phase in ["Greg", "Gboth"]:  # path-length regularisation
            batch_size = gen_z.shape[0] // self.pl_batch_shrink
            gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
            pl_penalty = self.path_length_penalty(gen_img, gen_ws)
            self._report("Loss/pl_penalty", pl_penalty)
            loss_Gpl = pl_penalty * self.pl_weight
            self._report("Loss/G/reg", loss_Gpl)
            loss_Gpl.mean().mul(gain).backward()

        if phase in ["Dmain", "Dboth"]:  # D on fakes: call them fake
            # nothing differentiates G here: without autograd, G takes its inference path on CPUs (issue 27)
            with torch.no_grad() if G_FAKES_WITHOUT_AUTOGRAD else contextlib.nullcontext():
                gen_img, _ = self.run_G(gen_z, gen_c, update_emas=True)
            gen_logits = self.run_D(gen_img, gen_c, update_emas=True)
            self._report("Loss/scores/fake", gen_logits)
            self._report("Loss/signs/fake", gen_logits.sign())
            loss_Dgen = F.softplus(gen_logits)
            loss_Dgen.mean().mul(gain).backward()

        if phase in ["Dmain", "Dreg", "Dboth"]:  # D on reals: call them real, and / or R1
            name = {"Dmain": "Dreal", "Dreg": "Dr1", "Dboth": "Dreal_Dr1"}[phase]
            real_img_tmp = real_img.detach().requires_grad_(phase in ["Dreg", "Dboth"])
            real_logits = self.run_D(real_img_tmp, real_c)
            self._report("Loss/scores/real", real_logits)
            self._report("Loss/signs/real", real_logits.sign())
            if self.ada is not None:
                self.ada.accumulate(real_logits.detach())
            loss_Dreal = torch.zeros([], device=real_logits.device)
            if phase in ["Dmain", "Dboth"]:
                loss_Dreal = F.softplus(-real_logits)
                self._report("Loss/D/loss", loss_Dgen + loss_Dreal)
            loss_Dr1 = torch.zeros([], device=real_logits.device)
            if phase in ["Dreg", "Dboth"]:
                r1_penalty = self.r1_penalty(real_logits, real_img_tmp)
                loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                self._report("Loss/r1_penalty", r1_penalty)
                self._report("Loss/D/reg", loss_Dr1)
            with torch.autograd.profiler.record_function(name + "_backward"):
                (loss_Dreal + loss_Dr1).mean().mul(gain).backward()

    @staticmethod
    def r1_penalty(real_logits: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
        """||d sum(logits) / d img||^2 per image: [N]; keeps the graph for the backward pass."""
        (r1_grads,) = torch.autograd.grad(
            outputs=[real_logits.sum()], inputs=[real_img], create_graph=True, only_inputs=True
        )
        return r1_grads.square().sum([1, 2, 3])

    def path_length_penalty(self, gen_img: torch.Tensor, gen_ws: torch.Tensor) -> torch.Tensor:
        """(||J_w^T y|| - a)^2 per image: [N]; updates the running target a (`pl_mean`) in place."""
        pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
        (pl_grads,) = torch.autograd.grad(
            outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True, only_inputs=True
        )
        pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
        pl_mean = self.pl_mean.to(pl_lengths.dtype).lerp(pl_lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        return (pl_lengths - pl_mean).square()
