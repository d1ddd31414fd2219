"""Submitting a grid: one submitit job per run (a job array on SLURM), a watch loop that retries, the sbatch form.

- `make_executor`: submitit's SlurmExecutor (`--executor slurm`) or LocalExecutor (`--executor local`: this
  machine, one node per run; what the tests drive). Resources are per run: nodes, GPUs (ranks) per node, CPUs,
  memory, partition, account, time limit; SLURM signals USR2 `signal_delay_s` before the limit and requeues.
- `run_grid`: submits the runs (finished ones are skipped: never trained again), then, with `wait`, watches them,
  resubmits a failed run up to `retries` times (it continues from its newest snapshot: every run carries
  `--auto-resume`) and reports every failure with the tail of its log.
- `sbatch_script`: the same grid as one standalone sbatch job array (srun starts one torchrun per node, c10d
  rendezvous at the first node; USR2 before the limit -> SIGTERM to the ranks, which write a last snapshot,
  then `scontrol requeue`): for clusters without submitit, and the form book/rerun_dgx.md shows.
"""

from __future__ import annotations

import json
import shlex
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from medgan_core.grid.job import CONSOLE, RunJob, log_tail, train_command
from medgan_core.grid.table import GridRun, train_args
from medgan_core.utils.io import EXIT_DISK_FAULT

MANIFEST = "grid.json"
JOBS_FOLDER = ".grid-jobs"  # submitit's pickles and per-job logs, below the runs root


@dataclass
class JobResources:
    """What each run's job asks for (SLURM names in the comments)."""

    nodes: int = 1  # --nodes
    gpus_per_node: int = 1  # --gpus-per-node; also the ranks torchrun starts per node
    cpus_per_node: int | None = None  # --cpus-per-task (one task per node)
    mem_gb: float | None = None  # --mem
    partition: str | None = None  # --partition
    account: str | None = None  # --account
    qos: str | None = None  # --qos
    constraint: str | None = None  # --constraint
    time_min: int = 7 * 24 * 60  # --time, minutes
    signal_delay_s: int = 300  # --signal=USR2@N: time for the last snapshot before the limit
    max_parallel: int | None = None  # --array=...%N (local: runs at once)
    job_name: str = "medgan-grid"


def parse_time(text: str) -> int:
    """SLURM time limits ('90', '2-00:00:00', '36:00:00', '1-12') -> minutes."""
    days, _, rest = text.partition("-") if "-" in text else ("0", "", text)
    parts = [int(p) for p in rest.split(":")] if rest else [0]
    if "-" in text:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 1:  # minutes
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:  # MM:SS
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = parts[:3]
    return int(days) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def slurm_parameters(res: JobResources, gpu_cuda: bool = True) -> dict:
    """submitit SlurmExecutor parameters for one run's job (one task per node; torchrun starts the ranks)."""
    params = dict(
        job_name=res.job_name,
        nodes=res.nodes,
        ntasks_per_node=1,
        time=res.time_min,
        signal_delay_s=res.signal_delay_s,
        stderr_to_stdout=True,
        additional_parameters={"requeue": True},
    )
    if gpu_cuda:
        params["gpus_per_node"] = res.gpus_per_node
    for key, value in dict(
        cpus_per_task=res.cpus_per_node,
        mem=None if res.mem_gb is None else f"{res.mem_gb:g}GB",
        partition=res.partition,
        account=res.account,
        qos=res.qos,
        constraint=res.constraint,
        array_parallelism=res.max_parallel,
    ).items():
        if value is not None:
            params[key] = value
    return params


def make_executor(kind: str, folder: str | Path, res: JobResources, gpu_cuda: bool = True):
    """submitit executor for `kind` 'slurm' or 'local' with the run's resources."""
    import submitit

    if kind == "slurm":
        executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=1000)
        executor.update_parameters(**slurm_parameters(res, gpu_cuda))
        return executor
    if kind != "local":
        raise ValueError(f"--executor {kind}: use local or slurm")
    if res.nodes != 1:
        raise ValueError("--executor local runs on this machine: one node per run (--nodes 1)")
    executor = submitit.LocalExecutor(folder=str(folder), max_num_timeout=1000)
    executor.update_parameters(
        timeout_min=res.time_min,
        signal_delay_s=res.signal_delay_s,
        tasks_per_node=1,
        gpus_per_node=res.gpus_per_node if gpu_cuda else 0,
        stderr_to_stdout=True,
    )
    return executor


def write_manifest(runs_root: Path, runs: list[GridRun], kind: str, res: JobResources) -> Path:
    """runs_root/grid.json: the grid's runs and resources (what `medgan grid status` lists, pending ones too)."""
    from medgan_core.utils.io import atomic_write

    runs_root.mkdir(parents=True, exist_ok=True)
    manifest = dict(executor=kind, resources=asdict(res), runs=[asdict(run) for run in runs], time=time.time())
    with atomic_write(runs_root / MANIFEST, "wt") as f:
        json.dump(manifest, f, indent=2)
    return runs_root / MANIFEST


def _finished(run: GridRun) -> bool:
    return (Path(run.run_dir) / "finished.json").is_file()


def run_grid(
    runs: list[GridRun],
    runs_root: str | Path,
    kind: str = "local",
    res: JobResources | None = None,
    retries: int = 2,
    wait: bool = True,
    poll_s: float = 2.0,
    gpu_cuda: bool = True,
    force: bool = False,
    log=print,
) -> dict[str, str]:
    """Submit the grid's runs and (with `wait`) watch them to the end; returns {run name: outcome} with outcome
    'finished', 'failed', 'submitted' (not waited for), 'skipped' (finished before) or 'running' (a job of an
    earlier submission still runs it: two jobs must never share a run folder; `force` submits it anyway)."""
    res = res or JobResources()
    runs_root = Path(runs_root)
    write_manifest(runs_root, runs, kind, res)
    executor = make_executor(kind, runs_root / JOBS_FOLDER / "%j", res, gpu_cuda)
    outcomes = _earlier_outcomes(runs, force, log)
    todo = [run for run in runs if run.name not in outcomes]
    limit = len(todo)
    if kind == "local" and (res.max_parallel or gpu_cuda):  # local GPU runs would share the same devices
        limit = res.max_parallel or 1
    jobs = _Submissions(executor, res, log)
    jobs.submit(todo[:limit])
    pending = todo[limit:]
    if not wait:
        outcomes.update({run.name: "submitted" for run in todo})
        for run in pending:  # local with a parallel limit: the rest go now (no watcher to feed them)
            jobs.submit([run])
        return outcomes
    try:
        while jobs.active:
            time.sleep(poll_s)
            retry = []
            for name, (run, job) in list(jobs.active.items()):
                if not job.done():
                    continue
                del jobs.active[name]
                outcome = _ended(run, job, jobs.attempts[name], retries, log)
                if outcome == "retry":
                    retry.append(run)
                else:
                    outcomes[name] = outcome
            free = max(limit - len(jobs.active) - len(retry), 0)
            jobs.submit(retry + pending[:free])
            pending = pending[free:]
    except KeyboardInterrupt:
        if kind == "local":
            jobs.mark_stopped()
        raise
    return outcomes


def _earlier_outcomes(runs: list[GridRun], force: bool, log) -> dict[str, str]:
    """Runs not to submit: 'skipped' (finished before) and 'running' (a job of an earlier submission still runs
    it; unless `force`)."""
    from medgan_core.grid.status import run_state

    outcomes = {run.name: "skipped" for run in runs if _finished(run)}
    for name in outcomes:
        log(f"[grid] {name}: finished before; not trained again")
    for run in runs:
        if run.name not in outcomes and not force and run_state(Path(run.run_dir)) == "running":
            outcomes[run.name] = "running"
            log(f"[grid] {run.name}: still running ({Path(run.run_dir) / 'grid-job.json'}); not submitted again. "
                "If its job is gone (squeue), submit with --force")  # fmt: skip
    return outcomes


class _Submissions:
    """The grid's jobs in flight (`active`: name -> (run, job)) and how often each run was submitted."""

    def __init__(self, executor, res: JobResources, log) -> None:
        self.executor, self.res, self.log = executor, res, log
        self.attempts: dict[str, int] = {}
        self.active: dict[str, tuple] = {}

    def submit(self, batch: list[GridRun]) -> None:
        if not batch:
            return
        jobs = []
        with self.executor.batch():  # one job array on SLURM
            for run in batch:
                jobs.append(self.executor.submit(RunJob(run, self.res.nodes, self.res.gpus_per_node)))
        for run, job in zip(batch, jobs):
            self.attempts[run.name] = self.attempts.get(run.name, 0) + 1
            self.active[run.name] = (run, job)
            self.log(f"[grid] {run.name}: attempt {self.attempts[run.name]} submitted as job {job.job_id}")

    def mark_stopped(self) -> None:
        """Ctrl-C of a local launcher: each job stopped its ranks (SIGTERM: a last snapshot) and was then killed by
        submitit's controller; wait for the ranks to end and record the runs as stopped (not failed), so that
        `medgan grid status` says so and the same submit continues them. Ctrl-C again leaves at once."""
        from medgan_core.grid.job import read_state, write_state
        from medgan_core.grid.status import pid_alive

        self.log(f"[grid] interrupted: waiting for {len(self.active)} run(s) to write a last snapshot "
                 "(Ctrl-C again to leave them)")  # fmt: skip
        for run, _job in self.active.values():
            state = read_state(run.run_dir)
            if not state or state.get("state") != "running" or state.get("host") != socket.gethostname():
                continue
            while pid_alive(state.get("pid")):
                time.sleep(0.2)
            if not _finished(run):
                write_state(Path(run.run_dir), state="stopped", stopped_by="Ctrl-C of the launcher", ended=time.time())
                self.log(f"[grid] {run.name}: stopped; the same submit continues it from its newest snapshot")


def _ended(run: GridRun, job, attempt: int, retries: int, log) -> str:
    """What the end of a run's job means: 'finished', 'retry' (the next attempt continues from its newest
    snapshot) or 'failed' (no attempts left); logs it, with the tail of the run's log on a failure."""
    error = _job_error(job)
    if error is None and _finished(run):
        log(f"[grid] {run.name}: finished")
        return "finished"
    tail = log_tail(run.run_dir)
    what = error or "the job ended without finished.json"
    if f"(exit code {EXIT_DISK_FAULT})" in what:  # disk full or not writable: a retry would fail alike
        log(f"[grid] {run.name}: FAILED: a file of the run could not be written; free space or fix the "
            f"permissions, then submit again (it goes on from its snapshot). Log tail:\n{_indent(tail)}")  # fmt: skip
        return "failed"
    if attempt <= retries:
        log(f"[grid] {run.name}: attempt {attempt} failed ({_first_line(what)}); retrying, it continues "
            f"from its newest snapshot. Log tail:\n{_indent(tail)}")  # fmt: skip
        return "retry"
    log(f"[grid] {run.name}: FAILED after {attempt} attempt(s) ({_first_line(what)}). Log tail "
        f"({Path(run.run_dir) / CONSOLE}):\n{_indent(tail)}")  # fmt: skip
    return "failed"


def _job_error(job) -> str | None:
    """None when the job returned, else the last line of its error (a RunFailed message or submitit's)."""
    try:
        job.result()
    except Exception as exc:  # submitit wraps the job's exception with its traceback text
        lines = [line for line in str(exc).splitlines() if line.strip()]
        for line in lines:
            if "RunFailed:" in line:
                return line.split("RunFailed:", 1)[1].strip()
        return lines[-1] if lines else type(exc).__name__
    return None


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) if text else "    (no log)"


# ---- the standalone sbatch form ---------------------------------------------------------------------------------
def sbatch_script(runs: list[GridRun], runs_root: str | Path, res: JobResources, python_setup: str = "") -> str:
    """One sbatch job array for the grid, without submitit (see the module's docstring); array task i = runs[i]."""
    runs_root = Path(runs_root)
    logs = runs_root / JOBS_FOLDER / "%A_%a.out"
    header = [
        f"--job-name={res.job_name}",
        f"--array=0-{len(runs) - 1}" + (f"%{res.max_parallel}" if res.max_parallel else ""),
        f"--nodes={res.nodes}",
        "--ntasks-per-node=1",
        f"--gpus-per-node={res.gpus_per_node}",
        f"--time={res.time_min // 1440}-{res.time_min % 1440 // 60:02d}:{res.time_min % 60:02d}:00",
        f"--signal=B:USR2@{res.signal_delay_s}",
        "--requeue",
        "--open-mode=append",
        f"--output={logs}",
    ]
    for flag, value in [
        ("cpus-per-task", res.cpus_per_node),
        ("mem", None if res.mem_gb is None else f"{res.mem_gb:g}G"),
        ("partition", res.partition),
        ("account", res.account),
        ("qos", res.qos),
        ("constraint", res.constraint),
    ]:
        if value is not None:
            header.append(f"--{flag}={value}")
    lines = ["#!/bin/bash", *(f"#SBATCH {shlex.quote(h)}" for h in header), ""]
    if len({(run.outdir, run.data, run.common_args) for run in runs}) != 1:
        raise ValueError("an sbatch array needs runs that share --outdir, --data and the common options")
    first = runs[0]
    lines += [
        f"# {len(runs)} runs; each continues from its newest snapshot when requeued (--auto-resume) and stops at once",
        "# when it finished before. Generated by `medgan grid submit --print-sbatch`; SLURM does not make the log",
        f"# folder: mkdir -p {shlex.quote(str(logs.parent))} before sbatch.",
        *([python_setup] if python_setup else []),
        "case $SLURM_ARRAY_TASK_ID in",
    ]
    for index, run in enumerate(runs):
        own = " ".join(shlex.quote(a) for a in run.experiment_args)
        lines.append(f"  {index}) RUN={shlex.quote(run.name)}; SEED={run.seed}; OWN=({own}) ;;")
    run_dir = str(Path(first.outdir) / "$RUN")
    template = train_args(first.outdir, run_dir, first.data, "$SEED", first.common_args, ["${OWN[@]}"])
    for run in runs:  # the script runs exactly the commands the jobs would
        expanded = [a.replace("$RUN", run.name).replace("$SEED", str(run.seed)) for a in template]
        own = expanded.index("${OWN[@]}")
        assert [*expanded[:own], *run.experiment_args, *expanded[own + 1 :]] == list(run.train_args), run.name
    lines += ["esac", f"ARGS=({' '.join(_quote_arg(a) for a in template)})", ""]
    endpoint = None
    if res.nodes > 1:
        lines += [
            'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            "PORT=$((20000 + SLURM_JOB_ID % 20000))",
        ]
        endpoint = "$HEAD:$PORT"
    command = train_command(
        ["${ARGS[@]}"], res.nodes, res.gpus_per_node, endpoint, "$SLURM_JOB_ID", python="python", launcher=["torchrun"]
    )
    lines += [
        "# USR2 shortly before the time limit: the ranks get SIGTERM and write a last snapshot, then the job goes",
        "# back to the queue; the next attempt continues from that snapshot (a preempted job is requeued by SLURM).",
        "requeue() {",
        '  echo "[grid] $RUN: USR2: last snapshot, then requeue"',
        '  kill -TERM "$STEP"; wait "$STEP"',
        '  scontrol requeue "$SLURM_JOB_ID"; exit 0',
        "}",
        "trap requeue USR2",
        f"srun --kill-on-bad-exit=1 {' '.join(_quote_arg(c) for c in command)} &",
        "STEP=$!",
        'wait "$STEP"',
        "",
    ]
    return "\n".join(lines)


def _quote_arg(arg: str) -> str:
    return f'"{arg}"' if "$" in arg else shlex.quote(arg)
