"""From `training_loop`'s keyword arguments to running ranks: print them, make the run folder, train in 1..N processes.

- Under torchrun (RANK / WORLD_SIZE set): this process is one rank; rank 0 makes the run folder and tells the
  others its name.
- Otherwise with --gpus N > 1: N processes are spawned with torch.multiprocessing on a free local port; if any
  fails, the others are stopped and the error is raised (a non-zero exit, never a hang). Each opens the dataset.
- Otherwise: one process, which trains on the dataset the options were checked against (opened once).
Rank 0 writes training_options.json (the keyword arguments, NVIDIA's layout) and log.txt (everything it prints).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from medgan_core.training import distributed as distrib
from medgan_core.utils.io import atomic_write


def launch(kwargs: dict, training_set=None, outdir: str = ".", desc: str = "run", dry_run: bool = False, log=print):
    """Train with `kwargs` (see `training_loop`); returns rank 0's result (kimg, tick, stopped_by) or None.

    training_set: the dataset already opened for `kwargs` (used by a single process, closed otherwise).
    outdir, desc: where the run folder <00000-desc> goes when kwargs['run_dir'] is None.
    """
    log("Training options:\n" + json.dumps(kwargs, indent=2))
    if dry_run:
        if training_set is not None:
            training_set.close()
        return None
    world = distrib.env_world()
    if world is not None:  # torchrun: we are one of WORLD_SIZE ranks
        rank, _world_size, local_rank = world
        return run_rank(rank, local_rank, kwargs, training_set, outdir, desc, log)
    if kwargs["num_gpus"] == 1:
        return run_rank(0, 0, kwargs, training_set, outdir, desc, log)
    if training_set is not None:
        training_set.close()  # each spawned rank opens its own
    kwargs = dict(kwargs, run_dir=kwargs["run_dir"] or make_run_dir(outdir, desc))
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(distrib.free_port())
    # Ctrl-C reaches every rank (one process group): the ranks stop together after a last snapshot, so the
    # parent ignores it instead of tearing them down mid-write (the children inherit the ignore and override it)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        torch.multiprocessing.spawn(_spawned_rank, args=(kwargs,), nprocs=kwargs["num_gpus"], join=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    return None


def make_run_dir(outdir: str, desc: str) -> str:
    """outdir/<NNNNN>-<desc>: the next free number, NVIDIA-style."""
    os.makedirs(outdir, exist_ok=True)
    ids = [
        int(name.split("-")[0])
        for name in os.listdir(outdir)
        if name.split("-")[0].isdigit() and os.path.isdir(os.path.join(outdir, name))
    ]
    return os.path.join(outdir, f"{max(ids, default=-1) + 1:05d}-{desc}")


def _spawned_rank(rank: int, kwargs: dict) -> None:
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(kwargs["num_gpus"])
    os.environ["LOCAL_RANK"] = str(rank)
    run_rank(rank, rank, kwargs, None, None, None, print)


def run_rank(rank: int, local_rank: int, kwargs: dict, training_set, outdir, desc, log=print) -> dict:
    """Initialise this rank's process group, agree on the run folder, train, and shut down."""
    from medgan_core.training.loop import training_loop

    world_size = kwargs["num_gpus"]
    info = distrib.init_distributed(rank, world_size, local_rank, device=kwargs["device"])
    try:
        run_dir = kwargs["run_dir"]
        if run_dir is None:
            holder = [make_run_dir(outdir, desc) if rank == 0 else None]
            if world_size > 1:
                dist.broadcast_object_list(holder, src=0)
            run_dir = holder[0]
        kwargs = dict(kwargs, run_dir=run_dir)
        if rank == 0:
            os.makedirs(run_dir, exist_ok=True)
            with atomic_write(Path(run_dir) / "training_options.json", "wt") as f:
                json.dump(kwargs, f, indent=2)
        with tee_output(Path(run_dir) / "log.txt") if rank == 0 else nullcontext():
            log(f"Run folder: {run_dir} ({world_size} rank(s), device {info.device})")
            distrib.barrier()
            result = training_loop(
                **dict(kwargs, rank=rank, device=info.device), training_set=training_set, progress_fn=log
            )
        if rank == 0 and not result["stopped_by"]:  # reached --kimg: --auto-resume never trains it again
            from medgan_core.training.autoresume import mark_finished

            mark_finished(run_dir, result["kimg"], result["tick"] - 1)
        return result
    finally:
        sys.stdout.flush()
        distrib.shutdown()


class _Tee:
    """A text stream that writes to `stream` and to `file` (NVIDIA's dnnlib.util.Logger, without the globals)."""

    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ... of the console stream
        return getattr(self.stream, name)


@contextmanager
def tee_output(path: Path):
    """Copy what this process prints (stdout and stderr) into `path`, appended (a resumed run adds to it)."""
    with open(path, "a", encoding="utf-8") as file:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(stdout, file), _Tee(stderr, file)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr
