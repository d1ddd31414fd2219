"""From parsed options to running ranks: validate, make the run folder, then train in 1..N processes.

- Under torchrun (RANK / WORLD_SIZE set): this process is one rank; rank 0 makes the run folder and tells the
  others its name.
- Otherwise with --gpus N > 1: N processes are spawned with torch.multiprocessing on a free local port; if any
  fails, the others are stopped and the error is raised (a non-zero exit, never a hang).
- Otherwise: one process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys

import torch
import torch.distributed as dist

from medgan_core.training import distributed as distrib
from medgan_core.training.dataset import ImageFolderDataset
from medgan_core.training.options import TrainOptions, build_config, make_run_dir


def prepare(opts: TrainOptions) -> dict:
    """Check the dataset (shape, channels, labels) and build the configuration; raises DatasetError early."""
    dataset = ImageFolderDataset(
        opts.data, use_labels=opts.cond, max_size=opts.max_size, xflip=opts.mirror, random_seed=opts.seed
    )
    config = build_config(opts, dataset.num_channels, dataset.resolution, dataset.label_dim)
    config["dataset_summary"] = dict(
        images=len(dataset), channels=dataset.num_channels, resolution=dataset.resolution, label_dim=dataset.label_dim
    )
    dataset.close()
    return config


def launch(opts: TrainOptions, log=print) -> dict | None:
    """Run the training described by `opts`; returns rank 0's result (kimg, tick, stopped_by) or None."""
    config = prepare(opts)
    world = distrib.env_world()
    if opts.dry_run:
        log(opts.to_json())
        log(json.dumps(config, indent=2))
        return None
    if world is not None:  # torchrun: we are one of WORLD_SIZE ranks
        rank, world_size, local_rank = world
        if world_size != opts.gpus and opts.gpus != 1:
            raise RuntimeError(f"--gpus {opts.gpus} disagrees with torchrun's WORLD_SIZE={world_size}")
        opts = dataclasses.replace(opts, gpus=world_size)
        config = build_config(opts, **_shape(config))
        return run_rank(rank, world_size, local_rank, opts, config, log)
    if opts.gpus == 1:
        return run_rank(0, 1, 0, opts, config, log)
    opts = dataclasses.replace(opts, run_dir=make_run_dir(opts))
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(distrib.free_port())
    # Ctrl-C reaches every rank (one process group): the ranks stop together after a last snapshot, so the
    # parent ignores it instead of tearing them down mid-write (the children inherit the ignore and override it)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        torch.multiprocessing.spawn(_spawned_rank, args=(opts, config), nprocs=opts.gpus, join=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    return None


def _shape(config: dict) -> dict:
    s = config["dataset_summary"]
    return dict(num_channels=s["channels"], resolution=s["resolution"], label_dim=s["label_dim"])


def _spawned_rank(rank: int, opts: TrainOptions, config: dict) -> None:
    os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"] = str(rank), str(opts.gpus), str(rank)
    config = dict(config, **{})  # each process its own copy
    run_rank(rank, opts.gpus, rank, opts, config, print)


def run_rank(rank: int, world_size: int, local_rank: int, opts: TrainOptions, config: dict, log=print) -> dict:
    """Initialise this rank's process group, agree on the run folder, train, and shut down."""
    from medgan_core.training.loop import training_loop, write_options

    info = distrib.init_distributed(rank, world_size, local_rank, device=opts.device)
    try:
        run_dir = make_run_dir(opts) if rank == 0 else None
        if world_size > 1:
            holder = [run_dir]
            dist.broadcast_object_list(holder, src=0)
            run_dir = holder[0]
        config = dict(config, device=str(info.device), run_dir=run_dir)
        if rank == 0:
            os.makedirs(run_dir, exist_ok=True)
            write_options(run_dir, dataclasses.asdict(opts), config)
            log(f"Run folder: {run_dir} ({world_size} rank(s), device {info.device})")
        distrib.barrier()
        return training_loop(
            config,
            run_dir,
            info,
            options=dataclasses.asdict(opts),
            resume=opts.resume,
            debug_hashes=opts.debug_hashes,
            progress=log,
        )
    finally:
        sys.stdout.flush()
        distrib.shutdown()
