"""Train StyleGAN2(-ADA): `medgan train`, `python -m medgan_core.train`, `torchrun --nproc_per_node N -m
medgan_core.train`, and `train(**options)`, the one entry point that these, the book and the tests call.

An option's way in: its field of `TrainOptions` (training/options.py: default and help; the command line is built
from them) -> `training_kwargs` (same file: the dataset opened once, the --cfg preset applied, NVIDIA's
`training_options.json` layout) -> `launch` (training/launch.py: run folder, 1..N ranks) -> `training_loop(**kwargs)`
(training/loop.py) -> `StyleGAN2Loss(**loss_kwargs)` (loss.py).
Multi-node: torchrun's usual --nnodes, --node_rank, --rdzv_backend, --rdzv_endpoint arguments.
"""

from __future__ import annotations

import dataclasses
import signal

import click

from medgan_core.training import allocator, autoresume
from medgan_core.training.dataset import DatasetError
from medgan_core.training.launch import launch
from medgan_core.training.options import TrainOptions, run_desc, training_kwargs, training_options


def train(**options) -> dict | None:
    """Train as `medgan train` would with these options (TrainOptions' fields); returns rank 0's result
    {'kimg', 'tick', 'stopped_by'} in a single process, else None."""
    opts = TrainOptions(**options)
    if not opts.dry_run:
        opts = dataclasses.replace(opts, allocator=allocator.ensure(opts.allocator, opts.device))
    try:  # --resume is checked before any folder is made; --auto-resume picks the snapshot to continue from
        opts = autoresume.resolve(opts)
    except autoresume.RunFinished as finished:
        print(finished)
        return None
    kwargs, training_set = training_kwargs(opts)
    return launch(kwargs, training_set, outdir=opts.outdir, desc=run_desc(opts, kwargs), dry_run=opts.dry_run)


@click.command(name="train", context_settings={"help_option_names": ["-h", "--help"]})
@training_options
def main(**options) -> None:
    """Train StyleGAN2-ADA on a folder or zip of PNGs.

    Defaults are NVIDIA's StyleGAN2 configuration (8 mapping layers, lr 0.002, Adam betas (0, 0.99),
    minibatch-std group 4, channel_base 32768, channel_max 512, fused modconv for inference only, 4 kimg per
    tick, a snapshot every 50 ticks, metric fid50k_full, EMA batch*10/32 kimg with a 0.05 ramp-up, R1 every 16
    and path length (weight 2) every 4 steps, style mixing 0.9, mixed precision in the 4 highest resolutions
    on CUDA): --cfg stylegan2. --cfg paper256, paper512, paper1024 and auto are stylegan2-ada-pytorch's presets.
    NVIDIA's spellings work (--mirror=1, --cond=true, --map-depth, -n). The paper adds --beta1 0.9 --fp32.
    --gpus N spawns N ranks; or use `torchrun --nproc_per_node N -m medgan_core.train`. On CPU the allocator is
    tuned by default (--allocator).
    """
    try:
        result = train(**options)
    except (DatasetError, autoresume.ResumeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if result is not None and result.get("stopped_by"):  # the usual 128 + signal number (130 Ctrl-C, 143 TERM)
        name = result["stopped_by"]
        raise SystemExit(128 + signal.Signals[name].value if name in signal.Signals.__members__ else 1)


if __name__ == "__main__":
    main()
