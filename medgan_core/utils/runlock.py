"""One writer per run folder: an exclusive OS lock that `medgan train` holds for the run's life.

The lock is `fcntl.flock` on `<run>/.medgan-run.lock`: the kernel drops it when the holding process ends, however
it ends (SIGKILL and OOM kills included), so a dead trainer never blocks the next. Beside it,
`.medgan-run.lock.json` names the holder (host, pid, start time, command, scheduler job id) for the message a
second writer gets, and says whether the holder released the lock or vanished without doing so.

- A second writer into a held folder stops before writing anything (`RunLocked`, which names the holder); with
  `wait_s` (`MEDGAN_LOCK_WAIT` for the trainer; the grid sets it for its jobs) it first waits that long for the
  holder to end, as a requeued job waits for its first copy's last snapshot.
- A lock whose holder died on this host is taken over (the kernel released it; the record says who it was).
- Across nodes the kernel's word is not enough: on filesystems whose locks stay node-local (Lustre's
  `localflock`, some NFS set-ups) another node's live holder does not show. A holder on another host that never
  released is taken over only on the scheduler's word that its job ended: the same SLURM job id as ours (a
  requeued job restarts only after its first instance ended), or `squeue` not knowing the job any more. Otherwise
  this waits up to `wait_s` and then refuses, naming the record to delete once nothing writes there.
- `medgan metrics` takes the same lock for its append to metric-*.jsonl.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".medgan-run.lock"
HOLDER_NAME = ".medgan-run.lock.json"
EXIT_LOCKED = 75  # EX_TEMPFAIL (sysexits.h): nothing was done; the same command succeeds once the holder ended
_POLL_S = 1.0


class RunLocked(RuntimeError):
    """Another process writes the run folder; the message names it and what to do."""


def read_holder(run_dir: str | os.PathLike) -> dict | None:
    """The holder record of `run_dir` (whoever last took its lock), or None."""
    try:
        return json.loads((Path(run_dir) / HOLDER_NAME).read_text())
    except (OSError, ValueError):
        return None


def describe(holder: dict | None) -> str:
    if not holder:
        return "a process that left no record"
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    return (f"{holder.get('purpose', 'medgan')} on host {holder.get('host')}, pid {holder.get('pid')}{job}, since "
            f"{holder.get('started_at')}: {holder.get('command')}")  # fmt: skip


def _job_id() -> str | None:
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")


def _scheduler_says_ended(holder: dict) -> bool:
    """Whether the scheduler vouches that the job of a holder on another host has ended (see the docstring)."""
    job = holder.get("job_id")
    if not job:
        return False
    if job == _job_id() and os.environ.get("SLURM_JOB_ID"):
        return True
    if shutil.which("squeue") is None:
        return False
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if out.returncode != 0:
        return "invalid job id" in out.stderr.lower()
    return not out.stdout.strip()


def _try_flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(run_dir: Path, record: dict) -> None:
    from medgan_core.utils.io import write_whole

    write_whole(run_dir / HOLDER_NAME, json.dumps(record, indent=2) + "\n", durable=False)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, purpose: str = "medgan train", wait_s: float = 0.0,
             advice: str = "", log=print) -> Iterator[dict]:  # fmt: skip
    """Hold the run folder's lock (made if missing) inside the block; yields this holder's record.

    Raises RunLocked when another live writer holds it after `wait_s` seconds; `advice` ends that message.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one writer per folder is up to the user
        yield {}
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        previous = _acquire(fd, run_dir, time.time() + max(wait_s, 0.0), advice)
        if previous and not previous.get("released"):
            log(f"{run_dir}: taking over the lock of {describe(previous)} (no longer running)")
        record = dict(purpose=purpose, host=socket.gethostname(), pid=os.getpid(), job_id=_job_id(),
                      started=time.time(), started_at=time.strftime("%Y-%m-%d %H:%M:%S %z"),
                      command=shlex.join(sys.argv), released=False)  # fmt: skip
        _write_holder(run_dir, record)
        try:
            yield record
        finally:
            with contextlib.suppress(OSError):  # a full disk must not hide the error that ends the run
                _write_holder(run_dir, dict(record, released=True, ended=time.time()))
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, run_dir: Path, deadline: float, advice: str) -> dict | None:
    """Take the flock, then check the record for a holder on another host; returns the previous record."""
    while True:
        if _try_flock(fd):
            holder = read_holder(run_dir)
            elsewhere = holder and not holder.get("released") and holder.get("host") != socket.gethostname()
            if not elsewhere or _scheduler_says_ended(holder):
                return holder
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)  # maybe a live holder the kernel of this node cannot see
            if time.time() >= deadline:
                raise RunLocked(
                    f"{run_dir} is held by {describe(holder)}, which never released it; this node's lock is free, "
                    f"so that process died or this filesystem keeps locks per node. Once nothing writes {run_dir} "
                    f"any more, delete {run_dir / HOLDER_NAME} and start again. {advice}".rstrip()
                )
        elif time.time() >= deadline:
            raise RunLocked(
                f"{run_dir} is being written by {describe(read_holder(run_dir))}; a run folder has one writer. "
                f"Wait for it to end (or stop it) and run this again. {advice}".rstrip()
            )
        time.sleep(min(_POLL_S, max(deadline - time.time(), 0.01)))
