"""`medgan train`: the trainer's command line (options shared with `python -m medgan_core.train`)."""

from __future__ import annotations

import click

from medgan_core.training.options import training_options


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@training_options
def train(**kwargs) -> None:
    """Train StyleGAN2-ADA on a folder or zip of PNGs.

    Defaults are NVIDIA's StyleGAN2 configuration (8 mapping layers, lr 0.002, Adam betas (0, 0.99),
    minibatch-std group 4, channel_base 32768, channel_max 512, fused modconv for inference only, 4 kimg per
    tick, a snapshot every 50 ticks, metric fid50k_full, EMA batch*10/32 kimg with a 0.05 ramp-up, R1 every 16
    and path length (weight 2) every 4 steps, style mixing 0.9, mixed precision in the 4 highest resolutions
    on CUDA). The paper adds --beta1 0.9 --fp32. --gpus N spawns N ranks; or use
    `torchrun --nproc_per_node N -m medgan_core.train`. On CPU the allocator is tuned by default (--allocator).
    """
    from medgan_core.train import run_from_kwargs

    run_from_kwargs(**kwargs)
