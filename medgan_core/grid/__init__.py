"""The grid launcher: many `medgan train` runs (experiments x seeds) on SLURM or on this machine, through submitit.

- `table`: the experiment table (the paper's four ablation experiments by default, or a YAML/CSV of name +
  `medgan train` options) crossed with the seeds into runs named as the ablation chapter reads them
  (`exp<k>-seed<s>` for the paper's).
- `job`: what one job runs on each of its nodes: the run's ranks (torchrun with a c10d rendezvous across nodes),
  always with `--auto-resume`, so a requeued, preempted or killed run continues from its newest snapshot in the
  same run folder and a finished run is never trained again; its console goes to the run's log.txt.
- `launcher`: one submitit job per run (a job array on SLURM, the local executor here and in tests), a watch
  loop that retries failed runs and reports each failure with its log tail, and the standalone sbatch form.
- `status`: one table of the grid (run, state, kimg, last tick time, best metric) from the run folders.

The grid sits above the trainer, as the command line does; nothing below imports it.
"""

from medgan_core.grid.status import grid_status, status_table
from medgan_core.grid.table import GridRun, load_table, make_runs, paper_table

__all__ = ["GridRun", "grid_status", "load_table", "make_runs", "paper_table", "status_table"]
