"""Train StyleGAN2(-ADA): `medgan train`, `python -m medgan_core.train`, `torchrun --nproc_per_node N -m
medgan_core.train`, and `train(**options)`, the one entry point that these, the book and the tests call.

An option's way in: its field of `TrainOptions` (training/options.py: default and help; the command line is built
from them) -> `training_kwargs` (same file: the dataset opened once, the --cfg preset applied, NVIDIA's
`training_options.json` layout) -> `launch` (training/launch.py: run folder, 1..N ranks) -> `training_loop(**kwargs)`
(training/loop.py) -> `StyleGAN2Loss(**loss_kwargs)` (loss.py).
Multi-node: torchrun's usual --nnodes, --node_rank, --rdzv_backend, --rdzv_endpoint arguments.

A run folder has one writer: the trainer holds its lock (utils/runlock.py) from before --auto-resume tidies it to
the run's end; `MEDGAN_LOCK_WAIT=SECONDS` waits that long for a holder to end before refusing (the grid sets it).
Exit codes: 0 done (or finished before), 1 a training failure, 2 bad options, 74 a file of the run could not be
written (disk full, over quota, read-only, not writable; `EXIT_DISK_FAULT`), 75 the run folder is held by another
writer (`EXIT_LOCKED`), 128 + N stopped by signal N after a last snapshot (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path

import click

from medgan_core.training import allocator, autoresume
from medgan_core.training.dataset import DatasetError
from medgan_core.training.launch import explain_fault, launch
from medgan_core.training.options import TrainOptions, run_desc, training_kwargs, training_options
from medgan_core.utils.io import EXIT_DISK_FAULT, DiskFault
from medgan_core.utils.runlock import EXIT_LOCKED, RunLocked, run_lock

_EPILOG = (
    "Exit codes: 0 done, 1 training failure, 2 bad options, 74 a run file could not be written (disk full, quota, "
    "read-only; the message names the file, the bytes needed, the last snapshot and the command that continues), "
    "75 the run folder is held by another writer, 130/143 stopped by Ctrl-C/SIGTERM after a last snapshot."
)


def train(**options) -> dict | None:
    """Train as `medgan train` would with these options (TrainOptions' fields); returns rank 0's result
    {'kimg', 'tick', 'stopped_by'} in a single process, else None."""
    opts = TrainOptions(**options)
    if not opts.dry_run:
        opts = dataclasses.replace(opts, allocator=allocator.ensure(opts.allocator, opts.device))
    try:
        with ExitStack() as stack:
            # a folder --auto-resume may tidy is locked first; a new one once the options passed their checks (a
            # refused command makes no folder), and a finished run's is only read (nothing in it changes)
            early = bool(opts.run_dir) and Path(opts.run_dir).is_dir() and not autoresume.finished_record(opts.run_dir)
            if early:
                stack.enter_context(_lock(opts))
            try:  # --resume is checked before any folder is made; --auto-resume picks the snapshot to continue from
                opts = autoresume.resolve(opts)
            except autoresume.RunFinished as finished:
                print(finished)
                return None
            kwargs, training_set = training_kwargs(opts)
            if not early:
                stack.enter_context(_lock(opts))
            return launch(kwargs, training_set, outdir=opts.outdir, desc=run_desc(opts, kwargs), dry_run=opts.dry_run)
    except DiskFault as fault:
        explain_fault(fault, opts.run_dir)
        raise


def _lock(opts: TrainOptions):
    """The lock of a given --run-dir, taken by its one writer (rank 0, or the process that spawns the ranks) before
    anything there changes; a new numbered folder is locked by the launcher that makes it."""
    if not opts.run_dir or opts.dry_run or int(os.environ.get("RANK", "0")) != 0:
        return nullcontext()
    advice = "To train beside it, give this run its own --run-dir."
    return run_lock(opts.run_dir, wait_s=float(os.environ.get("MEDGAN_LOCK_WAIT", "0") or 0), advice=advice)


@click.command(name="train", context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
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
    except (DiskFault, RunLocked) as exc:  # one line, no traceback, its own exit code
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_DISK_FAULT if isinstance(exc, DiskFault) else EXIT_LOCKED)
    if result is not None and result.get("stopped_by"):  # the usual 128 + signal number (130 Ctrl-C, 143 TERM)
        name = result["stopped_by"]
        raise SystemExit(128 + signal.Signals[name].value if name in signal.Signals.__members__ else 1)


if __name__ == "__main__":
    main()
