"""From `training_loop`'s keyword arguments to running ranks: print them, make the run folder, train in 1..N processes.

- Under torchrun (RANK / WORLD_SIZE set): this process is one rank; rank 0 makes the run folder and tells the
  others its name.
- Otherwise with --gpus N > 1: N processes are spawned with torch.multiprocessing on a free local port; if any
  fails, the others are stopped and the error is raised (a non-zero exit, never a hang). Each opens the dataset.
- Otherwise: one process, which trains on the dataset the options were checked against (opened once).
Rank 0 writes training_options.json (the keyword arguments, NVIDIA's layout) and log.txt (everything it prints).

One writer per run folder (utils/runlock.py): a folder made here is locked by the process that made it (rank 0,
or the parent of spawned ranks) before anything is written; a given --run-dir is locked earlier, by `train`.
A file that cannot be written for want of space or permission ends the run with a `DiskFault` whose message adds
the last complete snapshot and the command that continues the run (`continuation`); spawned ranks exit with
EXIT_DISK_FAULT after printing it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from medgan_core.training import distributed as distrib
from medgan_core.utils.io import EXIT_DISK_FAULT, DiskFault, append_whole, write_whole
from medgan_core.utils.runlock import run_lock


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
    with ExitStack() as stack:
        if kwargs["run_dir"] is None:  # a new folder: locked by this parent for the ranks' life
            kwargs = dict(kwargs, run_dir=make_run_dir(outdir, desc))
            stack.enter_context(run_lock(kwargs["run_dir"]))
        _spawn(kwargs)
    return None


def _spawn(kwargs: dict) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(distrib.free_port())
    # Ctrl-C reaches every rank (one process group): the ranks stop together after a last snapshot, so the
    # parent ignores it instead of tearing them down mid-write (the children inherit the ignore and override it)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        torch.multiprocessing.spawn(_spawned_rank, args=(kwargs,), nprocs=kwargs["num_gpus"], join=True)
    except torch.multiprocessing.ProcessExitedException as exc:
        if exc.exit_code == EXIT_DISK_FAULT:  # the rank printed the one-line message
            raise SystemExit(EXIT_DISK_FAULT) from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


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
    try:
        run_rank(rank, rank, kwargs, None, None, None, print)
    except DiskFault as fault:
        print(f"error: {fault}", file=sys.stderr, flush=True)
        sys.exit(EXIT_DISK_FAULT)


def run_rank(rank: int, local_rank: int, kwargs: dict, training_set, outdir, desc, log=print) -> dict:
    """Initialise this rank's process group, agree on the run folder, train, and shut down."""
    world_size = kwargs["num_gpus"]
    info = distrib.init_distributed(rank, world_size, local_rank, device=kwargs["device"])
    if info.device.type == "cpu" and world_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        from medgan_core.training.options import cpu_threads  # CPU ranks share the cores out (issue 27)

        torch.set_num_threads(cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world_size))))
    run_dir = kwargs["run_dir"]
    try:
        with ExitStack() as stack:
            if run_dir is None:
                holder = [make_run_dir(outdir, desc) if rank == 0 else None]
                if rank == 0:  # a new folder: this rank is its one writer (a given --run-dir is locked by `train`)
                    stack.enter_context(run_lock(holder[0]))
                if world_size > 1:
                    dist.broadcast_object_list(holder, src=0)
                run_dir = holder[0]
            return _train_in(run_dir, dict(kwargs, run_dir=run_dir), rank, world_size, info, training_set, log)
    except DiskFault as fault:
        explain_fault(fault, run_dir)
        raise
    finally:
        sys.stdout.flush()
        distrib.shutdown()


def _train_in(run_dir: str, kwargs: dict, rank: int, world_size: int, info, training_set, log) -> dict:
    from medgan_core.training.loop import training_loop

    if rank == 0:
        os.makedirs(run_dir, exist_ok=True)
        write_whole(Path(run_dir) / "training_options.json", json.dumps(kwargs, indent=2))
    with tee_output(Path(run_dir) / "log.txt") if rank == 0 else nullcontext():
        log(f"Run folder: {run_dir} ({world_size} rank(s), device {info.device})")
        if rank == 0:
            from medgan_core.training.options import cpu_setting

            setting = cpu_setting(dict(kwargs, device=str(info.device)), kwargs.get("cli_options"))
            if setting:
                log(setting)
        distrib.barrier()
        result = training_loop(**dict(kwargs, rank=rank, device=info.device), training_set=training_set,
                               progress_fn=log)  # fmt: skip
    if rank == 0 and not result["stopped_by"]:  # reached --kimg: --auto-resume never trains it again
        from medgan_core.training.autoresume import mark_finished

        mark_finished(run_dir, result["kimg"], result["tick"] - 1)
    return result


def explain_fault(fault: DiskFault, run_dir) -> DiskFault:
    """Add to `fault` the run's last complete snapshot and the command that continues it (once)."""
    if fault.continuation is not None or run_dir is None:
        return fault
    from medgan_core.training.autoresume import newest_snapshot

    snapshot, state, _ = newest_snapshot(run_dir) if Path(run_dir).is_dir() else (None, None, [])
    where = (f"last complete snapshot {snapshot} (kimg {state['cur_nimg'] / 1000:g})" if snapshot else
             "no complete snapshot yet (the run starts again)")  # fmt: skip
    fault.continuation = f"{where}; free space or fix the permissions, then continue: {continue_command(run_dir)}"
    return fault


def continue_command(run_dir) -> str:
    """This process's command line with --run-dir `run_dir` and --auto-resume (a command that continues the run)."""
    argv = list(sys.argv)
    if len(argv) >= 2 and Path(argv[0]).name == "medgan" and argv[1] == "train":
        head, args = ["medgan", "train"], argv[2:]
    elif argv and Path(argv[0]).name in ("train.py", "__main__.py") and Path(argv[0]).parent.name == "medgan_core":
        head, args = ["python", "-m", "medgan_core.train"], argv[1:]
    else:
        return f"the same training command with --run-dir {shlex.quote(str(run_dir))} --auto-resume"
    command = shlex.join([*head, *_without_resume(args), "--run-dir", str(run_dir), "--auto-resume"])
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun <your torchrun options> " + command.removeprefix("python ")
    return command


def _without_resume(args: list[str]) -> list[str]:
    """`args` without --run-dir, --auto-resume and a --resume that continues (auto or a snapshot: --auto-resume
    continues the run by itself); a --resume network to transfer from stays (the run may have no snapshot yet)."""
    from medgan_core.training.autoresume import ResumeError, check_resume_file

    def continues(value: str) -> bool:
        try:
            return value == "auto" or check_resume_file(value) == "snapshot"
        except ResumeError:
            return False

    kept, rest = [], list(args)
    while rest:
        option = [rest.pop(0)]
        name, has_value, value = option[0].partition("=")
        if name in ("--run-dir", "--resume") and not has_value and rest:
            value = rest.pop(0)
            option.append(value)
        if name not in ("--run-dir", "--auto-resume") and not (name == "--resume" and continues(value)):
            kept += option
    return kept


class _Tee:
    """A text stream that writes to `stream` and to `file` (NVIDIA's dnnlib.util.Logger, without the globals)."""

    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        append_whole(self.file, text.encode("utf-8", "replace"), self.file.name)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ... of the console stream
        return getattr(self.stream, name)


@contextmanager
def tee_output(path: Path):
    """Copy what this process prints (stdout and stderr) into `path`, appended (a resumed run adds to it), each
    write whole or not at all."""
    with open(path, "ab", buffering=0) as file:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(stdout, file), _Tee(stderr, file)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr
