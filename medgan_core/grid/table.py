"""The experiment table and the runs it makes: experiments x seeds -> one `medgan train` command line per run.

An experiment is a name and the `medgan train` options that set it apart. The default table is the paper's
ablation (PAPER.md, Training): exp1 baseline (no transfer, `--aug noaug`), exp2 pretrained (`--resume` the
transfer source), exp3 augmented (`--mirror --aug ada`), exp4 both, with the switches of
`medgan_core.book.paper.experiment_options`. A table of your own is YAML or CSV:

```yaml
experiments:                 # or a list at the top level, or a mapping name -> options
  - name: baseline
    options: {aug: noaug}    # a mapping (key = option without dashes) or a string: "--aug noaug"
  - name: augmented
    options: --mirror --aug ada
```

```text
name,options
baseline,--aug noaug
augmented,--mirror --aug ada
```

Each run is `<experiment>-seed<seed>` below the runs root (the paper's runs: `exp<k>-seed<s>`, the names the
ablation chapter reads). The launcher owns --outdir, --run-dir, --seed and --auto-resume; a table that sets them
is refused, as is any option `medgan train` would refuse, before anything is submitted.
"""

from __future__ import annotations

import csv
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

RESERVED = ("--outdir", "--run-dir", "--seed", "--auto-resume")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class TableError(ValueError):
    """An experiment table or grid option that cannot be used; the message names the file or run and the fix."""


@dataclass(frozen=True)
class Experiment:
    name: str  # run folders are '<name>-seed<s>'
    args: tuple[str, ...]  # the `medgan train` options of this experiment
    source: str = field(default="", compare=False)  # where it was defined (table file, row), for messages


@dataclass(frozen=True)
class GridRun:
    name: str  # run folder name below the runs root: '<experiment>-seed<seed>'
    experiment: str
    seed: int
    run_dir: str
    train_args: tuple[str, ...]  # the whole `medgan train` command line after the command name
    # its parts (the sbatch script writes the shared ones once): --outdir, --data, the options after --, the
    # experiment's own options
    outdir: str = ""
    data: str | None = None
    common_args: tuple[str, ...] = ()
    experiment_args: tuple[str, ...] = ()


def options_to_args(options, where: str = "") -> list[str]:
    """`medgan train` arguments from a string ("--mirror --aug ada"), a list, or a mapping {aug: ada, mirror: true}
    (True: a bare flag; False or None: left out; keys with '_' or '-' alike)."""
    if options is None:
        return []
    if isinstance(options, str):
        return shlex.split(options)
    if isinstance(options, (list, tuple)):
        return [str(item) for item in options]
    if isinstance(options, dict):
        args = []
        for key, value in options.items():
            flag = "--" + str(key).lstrip("-").replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not None and value is not False:
                args += [flag, str(value)]
        return args
    raise TableError(f"{where}: options must be a string, a list or a mapping, not {type(options).__name__}")


def paper_table(experiments=(1, 2, 3, 4), transfer_source: str | None = None) -> list[Experiment]:
    """The paper's ablation experiments `experiments` (1-4); 2 and 4 transfer from `transfer_source`."""
    from medgan_core.book.paper import EXPERIMENTS, experiment_options

    table = []
    for number in experiments:
        if number not in EXPERIMENTS:
            raise TableError(f"--experiments {number}: the paper's experiments are {sorted(EXPERIMENTS)}")
        try:
            options = experiment_options(number, transfer_source)
        except ValueError as exc:
            raise TableError(
                f"experiment {EXPERIMENTS[number]['name']} transfers from FFHQ weights: pass --transfer-source PATH "
                "(NVIDIA's stylegan2-ffhq-<resolution>.pkl) or leave it out with --experiments 1,3"
            ) from exc
        table.append(Experiment(f"exp{number}", tuple(options_to_args(options))))
    return table


def load_table(path: str | Path) -> list[Experiment]:
    """Experiments from a YAML (.yaml/.yml) or CSV (.csv) table (see the module's docstring)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such experiment table (a .yaml or .csv of name + medgan train options)")
    if path.suffix.lower() in (".yaml", ".yml"):
        rows = _yaml_rows(path)
    elif path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "name" not in reader.fieldnames:
                raise TableError(f"{path}: a CSV experiment table needs the columns name,options")
            rows = [(row["name"], row.get("options") or "") for row in reader]
    else:
        raise TableError(f"{path}: an experiment table is .yaml, .yml or .csv")
    table, seen = [], set()
    for index, (name, options) in enumerate(rows, start=1):
        where = f"{path}, experiment {index} ({name!r})"
        name = str(name or "").strip()
        if not _NAME.match(name):
            raise TableError(f"{where}: a name of letters, digits, '_', '.', '+' or '-' is needed (a folder name)")
        if name in seen:
            raise TableError(f"{where}: the name {name!r} is used twice")
        seen.add(name)
        table.append(Experiment(name, tuple(options_to_args(options, where)), source=where))
    if not table:
        raise TableError(f"{path}: no experiments in the table")
    return table


def _yaml_rows(path: Path) -> list[tuple[str, object]]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TableError(f"{path}: not valid YAML ({exc})") from exc
    if isinstance(data, dict) and "experiments" in data:
        data = data["experiments"]
    if isinstance(data, dict):
        return [(name, options) for name, options in data.items()]
    if isinstance(data, list) and all(isinstance(item, dict) and "name" in item for item in data):
        return [(item["name"], item.get("options")) for item in data]
    raise TableError(f"{path}: expected a list of {{name, options}} entries or a mapping name -> options")


def make_runs(
    table: list[Experiment],
    seeds,
    runs_root: str | Path,
    data: str | None,
    common_args=(),
    validate: bool = True,
    absolute: bool = True,
) -> list[GridRun]:
    """One run per experiment and seed: `--outdir ROOT --run-dir ROOT/<name> [--data DATA] --seed S <common>
    <experiment> --auto-resume` (an experiment's own options come last and win). Checked with `medgan train`'s
    own parser when `validate`; paths made absolute when `absolute` (jobs), kept as given otherwise (sbatch)."""
    root = Path(runs_root).absolute() if absolute else Path(runs_root)
    common = list(common_args)
    _refuse_reserved(common, "the options after --")
    runs = []
    for experiment in table:
        _refuse_reserved(experiment.args, experiment.source or f"experiment {experiment.name}")
        for seed in seeds:
            name = f"{experiment.name}-seed{seed}"
            data_path = None if data is None else str(Path(data).absolute() if absolute else data)
            args = train_args(str(root), str(root / name), data_path, str(seed), common, experiment.args)
            runs.append(
                GridRun(name, experiment.name, int(seed), str(root / name), tuple(args), str(root), data_path,
                        tuple(common), experiment.args)
            )  # fmt: skip
    if validate:
        for run in runs:
            check_train_args(run)
    return runs


def train_args(outdir: str, run_dir: str, data: str | None, seed: str, common, experiment) -> list[str]:
    """A run's `medgan train` command line (an experiment's own options after the shared ones: they win)."""
    args = ["--outdir", outdir, "--run-dir", run_dir]
    if data is not None:
        args += ["--data", data]
    return [*args, "--seed", seed, *common, *experiment, "--auto-resume"]


def _refuse_reserved(args, where: str) -> None:
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in RESERVED:
            raise TableError(f"{where}: {flag} is set by the grid launcher for every run; leave it out")


def check_train_args(run: GridRun) -> None:
    """Parse a run's command line with `medgan train`'s own options (unknown options, bad values, no --data)."""
    import click

    from medgan_core.cli.train import train

    try:
        train.make_context("medgan train", list(run.train_args))
    except click.exceptions.Exit:
        return
    except click.UsageError as exc:
        raise TableError(f"run {run.name}: medgan train refuses its options: {exc.format_message()}") from exc
