"""`medgan grid submit` / `medgan grid status`: the ablation grid (or a table of your own) on SLURM or locally."""

from __future__ import annotations

import json
import shutil
import sys

import click


def _seeds(text: str) -> list[int]:
    """'0-4' or '0,1,3' -> [0, 1, 2, 3, 4] / [0, 1, 3]."""
    seeds = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds += list(range(int(low), int(high or low) + 1))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: seeds as 0-4 or 0,1,3", param_hint="--seeds") from exc
    return seeds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def grid() -> None:
    """Run a grid of `medgan train` runs (the paper's ablation: 4 experiments x 5 seeds) and follow it."""


@grid.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs_root", metavar="RUNS_ROOT")
@click.argument("train_options", nargs=-1, type=click.UNPROCESSED, metavar="[-- MEDGAN_TRAIN_OPTIONS...]")
@click.option("--data", metavar="PATH", help="Training set (zip or folder) of every run; a table may set its own.")
@click.option("--seeds", default="0-4", show_default=True, help="Seeds: 0-4 or 0,1,3.")
@click.option("--experiments", default="1,2,3,4", show_default=True, help="The paper's experiments to run.")
@click.option("--table", metavar="YAML|CSV", help="Your own experiments (name + medgan train options) instead.")
@click.option("--transfer-source", metavar="PKL", help="FFHQ network for the paper's experiments 2 and 4.")
@click.option("--executor", type=click.Choice(["auto", "slurm", "local"]), default="auto", show_default=True,
              help="slurm (submitit job array), local (this machine), auto: slurm when srun is on PATH.")  # fmt: skip
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes per run.")
@click.option("--gpus-per-node", type=click.IntRange(min=1), default=1, show_default=True,
              help="GPUs (ranks) per node of a run.")  # fmt: skip
@click.option("--cpus-per-node", type=click.IntRange(min=1), help="CPUs per node (SLURM --cpus-per-task).")
@click.option("--mem-gb", type=click.FloatRange(min=0, min_open=True), help="Memory per node in GB.")
@click.option("--partition", help="SLURM partition.")
@click.option("--account", help="SLURM account.")
@click.option("--qos", help="SLURM quality of service.")
@click.option("--constraint", help="SLURM node constraint (e.g. a100).")
@click.option("--time", "time_limit", default="7-00:00:00", show_default=True,
              help="Time limit per job (minutes or D-HH:MM:SS); a longer run is requeued and continues.")  # fmt: skip
@click.option("--signal-delay", type=click.IntRange(min=10), default=300, show_default=True,
              help="Seconds before the limit at which the ranks are told to write a last snapshot.")  # fmt: skip
@click.option("--max-parallel", type=click.IntRange(min=1),
              help="Runs at once (the job array's %N; local GPU runs: 1 unless given).")  # fmt: skip
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Resubmissions of a failed run (each continues from its newest snapshot).")  # fmt: skip
@click.option("--wait/--no-wait", default=None, help="Watch the runs to the end [default: local waits, slurm not].")
@click.option("--print-sbatch", is_flag=True, help="Print the grid as one standalone sbatch job array and exit.")
@click.option("--dry-run", is_flag=True, help="Print each run's command and the job parameters; submit nothing.")
@click.option("--force", is_flag=True, help="Submit runs whose grid-job.json says running too (their job is gone).")
def submit(runs_root, train_options, data, seeds, experiments, table, transfer_source, executor, nodes,
           gpus_per_node, cpus_per_node, mem_gb, partition, account, qos, constraint, time_limit, signal_delay,
           max_parallel, retries, wait, print_sbatch, dry_run, force) -> None:  # fmt: skip
    """Submit one job per run (experiment x seed) into RUNS_ROOT/<experiment>-seed<s>.

    Options after `--` go to every run's `medgan train` (e.g. -- --kimg 25000 --gamma 1.6 --beta1 0.9 --fp32).
    Every run carries --auto-resume: a requeued, preempted or killed run continues from its newest snapshot in
    its own folder, and a finished run is never trained again, so submitting the same grid twice is safe.
    """
    from medgan_core.grid.launcher import JobResources, parse_time, run_grid, sbatch_script, slurm_parameters
    from medgan_core.grid.table import TableError, load_table, make_runs, paper_table

    try:
        if table:
            experiments_table = load_table(table)
        else:
            numbers = [int(k) for k in experiments.split(",") if k.strip()]
            experiments_table = paper_table(numbers, transfer_source)
        res = JobResources(
            nodes=nodes, gpus_per_node=gpus_per_node, cpus_per_node=cpus_per_node, mem_gb=mem_gb,
            partition=partition, account=account, qos=qos, constraint=constraint, time_min=parse_time(time_limit),
            signal_delay_s=signal_delay, max_parallel=max_parallel,
        )  # fmt: skip
        absolute = not print_sbatch  # the sbatch script keeps paths as given (relative to where it is submitted)
        runs = make_runs(experiments_table, _seeds(seeds), runs_root, data, train_options, absolute=absolute)
    except (TableError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if print_sbatch:
        click.echo(sbatch_script(runs, runs_root, res), nl=False)
        return
    if executor == "auto":
        executor = "slurm" if shutil.which("srun") else "local"
    on_gpu = "cpu" not in _device(train_options)
    if dry_run:
        for run in runs:
            click.echo(f"{run.name}: medgan train {' '.join(run.train_args)}")
        click.echo(json.dumps(dict(executor=executor, slurm=slurm_parameters(res, on_gpu)), indent=2))
        return
    if executor == "local" and on_gpu:
        import torch

        on_gpu = torch.cuda.is_available()
    try:
        outcomes = run_grid(
            runs, runs_root, executor, res, retries=retries, wait=executor == "local" if wait is None else wait,
            gpu_cuda=on_gpu, force=force, log=lambda line: click.echo(line),
        )  # fmt: skip
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo(f"\n[grid] interrupted: the runs stop with a last snapshot; the same command continues them "
                   f"(`medgan grid status {runs_root}`)", err=True)  # fmt: skip
        sys.exit(130)
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    click.echo(", ".join(f"{n} {o}" for o, n in _count(outcomes).items()) + f"; `medgan grid status {runs_root}`")
    if failed:
        click.echo(f"failed: {', '.join(failed)}", err=True)
        sys.exit(1)


def _device(train_options) -> str:
    args = list(train_options)
    for index, arg in enumerate(args):
        if arg == "--device" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
    return "auto"


def _count(outcomes: dict) -> dict:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


@grid.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs_root", type=click.Path(exists=True, file_okay=False), metavar="RUNS_ROOT")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of rows instead of the table.")
def status(runs_root, as_json) -> None:
    """One table of the grid in RUNS_ROOT: run, state, kimg, last tick time, best metric."""
    from medgan_core.grid.status import grid_status, status_table

    rows = grid_status(runs_root)
    click.echo(json.dumps(rows, indent=2) if as_json else status_table(rows))
