"""One grid run as a submitit job: on each of its nodes, start the run's ranks and watch them.

Each node starts one child in its own process group (its own session): `python -m medgan_core.train` for a
single rank, torchrun for several (`--standalone` on one node; across nodes a c10d rendezvous at the first node
of the job, id = the job id). The run's command line always carries `--auto-resume`, so every attempt continues
the run folder from its newest complete snapshot, and a run that finished is not trained again.

- Console: everything the node's ranks and torchrun print, tracebacks included, is appended to `<run>/console.txt`
  (other nodes: `console-node<k>.txt`); the trainer keeps its own log.txt (rank 0's lines). Before an attempt
  the tick lines after the snapshot it will continue from are cut (`autoresume.truncate_log`), as the trainer
  cuts stats.jsonl and log.txt.
- `<run>/grid-job.json` (node 0): job id, host, the child's pid (= its process group), attempt start and end,
  state (running, finished, failed, preempted) and exit code: what `medgan grid status` reads.
- Preemption or time limit: SLURM signals USR2 (`--signal`); submitit calls `checkpoint` on node 0, which sends
  SIGTERM to the ranks (the trainer writes a last snapshot and exits) and hands submitit a fresh copy of this
  job to requeue. The children ignore USR2 (SLURM signals every process of the step).
- Any other end without finished.json (a crash, a kill, a dead node) raises `RunFailed` with the log's tail;
  the launcher retries it (`launcher.run_grid`), except a run whose files could not be written (exit code 74,
  disk full or read-only: its last line says what to free), which fails at once.
- A new attempt waits up to `stop_grace_s` for the run folder's lock (`MEDGAN_LOCK_WAIT`): the ranks of an
  attempt that is still writing its last snapshot end first; one run folder never has two writers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import submitit

from medgan_core.grid.table import GridRun

LOG_TAIL_LINES = 25
STATE_FILE = "grid-job.json"
CONSOLE = "console.txt"


class RunFailed(RuntimeError):
    """A run's ranks ended without finishing; the message holds the exit code and the tail of its log."""


def train_command(
    train_args, nodes: int = 1, gpus_per_node: int = 1, rdzv_endpoint: str | None = None, rdzv_id: str = "medgan",
    python: str = sys.executable, launcher=None,
) -> list[str]:  # fmt: skip
    """The command one node runs. `launcher`: how torchrun is called (default: `python -m torch.distributed.run`;
    the sbatch script uses ["torchrun"])."""
    module = ["-m", "medgan_core.train", *train_args]
    if nodes == 1 and gpus_per_node == 1:
        return [python, *module]
    launcher = list(launcher or [python, "-m", "torch.distributed.run"])
    if nodes == 1:
        return [*launcher, "--standalone", "--nproc_per_node", str(gpus_per_node), *module]
    if rdzv_endpoint is None:
        raise ValueError("a multi-node run needs the rendezvous endpoint host:port of its first node")
    rendezvous = ["--rdzv_backend", "c10d", "--rdzv_endpoint", rdzv_endpoint, "--rdzv_id", rdzv_id]
    return [*launcher, "--nnodes", str(nodes), "--nproc_per_node", str(gpus_per_node), *rendezvous, *module]


def rendezvous_port(job_id: str) -> int:
    """A port in 20000-39999 that every node of a job derives alike from its job id."""
    return 20000 + zlib.crc32(str(job_id).encode()) % 20000


def log_tail(run_dir: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's console.txt (the launcher's capture), else of its log.txt; '' when neither."""
    for name in (CONSOLE, "log.txt"):
        path = Path(run_dir) / name
        if path.is_file():
            return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return ""


def read_state(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_state(run_dir: Path, **fields) -> None:
    from medgan_core.utils.io import atomic_write

    state = dict(read_state(run_dir) or {}, **fields)
    with atomic_write(run_dir / STATE_FILE, "wt", durable=False) as f:
        json.dump(state, f, indent=2)


def _ignore_usr2() -> None:  # in the child, before exec: SLURM's USR2 is for the job, not the ranks
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class RunJob(submitit.helpers.Checkpointable):
    """The callable submitit runs on every node of a run's job (see the module's docstring)."""

    def __init__(self, run: GridRun, nodes: int = 1, gpus_per_node: int = 1, stop_grace_s: float = 600):
        self.run = run
        self.nodes = nodes  # nodes per run
        self.gpus_per_node = gpus_per_node  # ranks per node
        self.stop_grace_s = stop_grace_s  # how long the ranks get to write a last snapshot on preemption
        self._process: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _process=None)

    def __call__(self) -> dict:
        from medgan_core.training import autoresume

        env = submitit.JobEnvironment()
        node, run_dir = env.node, Path(self.run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        finished = autoresume.finished_record(run_dir)
        if finished is not None:  # never train a finished run again (a stale requeue or a second submit)
            return dict(name=self.run.name, state="finished", kimg=finished["kimg"])
        endpoint = f"{env.hostnames[0]}:{rendezvous_port(env.job_id)}" if self.nodes > 1 else None
        command = train_command(self.run.train_args, self.nodes, self.gpus_per_node, endpoint, str(env.job_id))
        log_path = run_dir / (CONSOLE if node == 0 else f"console-node{node}.txt")
        if node == 0:
            _, state, _ = autoresume.newest_snapshot(run_dir)
            autoresume.truncate_log(log_path, state["cur_tick"] if state else -1)
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"[grid] job {env.job_id} on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.flush()
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_ignore_usr2,
                env=dict(os.environ, PYTHONUNBUFFERED="1", MEDGAN_LOCK_WAIT=str(self.stop_grace_s)),
            )  # fmt: skip
            if node == 0:
                write_state(run_dir, job_id=str(env.job_id), host=socket.gethostname(), pid=self._process.pid,
                             state="running", returncode=None, started=time.time(), ended=None)  # fmt: skip
            try:
                returncode = self._process.wait()
            except BaseException:  # Ctrl-C of a local launcher, or submitit leaving after a requeue
                self._stop_ranks(run_dir, node)
                raise
        done = autoresume.finished_record(run_dir)
        if node == 0:
            write_state(run_dir, state="finished" if done else "failed", returncode=returncode, ended=time.time())
        if done is not None:
            return dict(name=self.run.name, state="finished", kimg=done["kimg"])
        how = f"killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exit code {returncode}"
        raise RunFailed(f"run {self.run.name} stopped ({how}) before --kimg; last lines of {log_path}:\n"
                        + log_tail(run_dir))  # fmt: skip

    def _stop_ranks(self, run_dir: Path, node: int) -> None:
        """The job is leaving while its ranks may still run (they are in their own session, so no signal of the
        job's reaches them): SIGTERM (a last snapshot), SIGKILL after the grace time; no orphan keeps training."""
        process = self._process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            if node == 0:
                write_state(run_dir, state="stopped", returncode=process.returncode, ended=time.time())

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Preempted or at the time limit: stop the ranks with a last snapshot, then be requeued as a fresh job.

        Runs inside submitit's signal handler, i.e. while `__call__` sits in the child's wait(): the child must not
        be reaped here (that wait holds the lock), so its end is watched with waitid(WNOWAIT)."""
        process = self._process
        if process is not None and process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            returncode = _wait_exit(process.pid, self.stop_grace_s)
            if returncode is _STILL_RUNNING:
                _signal_group(process.pid, signal.SIGKILL)
                returncode = _wait_exit(process.pid, 60)
            write_state(Path(self.run.run_dir), state="preempted", returncode=returncode, ended=time.time())
        return submitit.helpers.DelayedSubmission(RunJob(self.run, self.nodes, self.gpus_per_node, self.stop_grace_s))


_STILL_RUNNING = "still running"


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:  # the group has ended already
        pass


def _wait_exit(pid: int, timeout: float):
    """The exit code (negative: the signal) of child `pid` once it ends, without reaping it; _STILL_RUNNING after
    `timeout` seconds; None when it was reaped already."""
    deadline = time.time() + timeout
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            return None
        if info is not None and info.si_pid == pid:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        if time.time() > deadline:
            return _STILL_RUNNING
        time.sleep(0.1)
