"""The SLURM path without a cluster: what `medgan grid submit --executor slurm` hands to sbatch (through submitit,
with stand-in srun/sbatch commands that record the submission) and the standalone `--print-sbatch` script are
checked against recorded expectations; book/rerun_dgx.md shows exactly what the launcher prints."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.grid.launcher import JobResources, parse_time, run_grid, slurm_parameters
from medgan_core.grid.table import make_runs, paper_table

EXPECTED = Path(__file__).parent / "expected"
BOOK_PAGE = Path(__file__).resolve().parents[2] / "book" / "rerun_dgx.md"
RESOURCES = JobResources(
    nodes=2, gpus_per_node=4, cpus_per_node=32, mem_gb=200, partition="gpu", account="medgan", time_min=2880,
    signal_delay_s=300, max_parallel=5,
)  # fmt: skip


def _record_or_compare(text: str, name: str) -> None:
    path = EXPECTED / name
    assert path.is_file(), f"no recorded expectation {path}; review this output and save it there:\n{text}"
    assert text == path.read_text(), f"{name} changed; if intended, review and record it again"


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """srun and sbatch stand-ins on PATH: sbatch copies the submitted script to capture/ and prints a job id."""
    bin_dir, capture = tmp_path / "bin", tmp_path / "capture"
    bin_dir.mkdir()
    capture.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {shlex.quote(str(capture))}/submitted.sh\necho "Submitted batch job 4242"\n'
    )
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return capture


def test_time_limits_in_minutes():
    assert [parse_time(t) for t in ("90", "2-00:00:00", "36:00:00", "1-12", "10:30")] == [90, 2880, 2160, 2160, 11]


def test_submitit_job_array_matches_the_recorded_sbatch(tmp_path, fake_slurm):
    import submitit

    root = tmp_path / "runs"
    runs = make_runs(paper_table([1, 3]), [0, 1], root, "liver.zip", ["--kimg", "25000", "--beta1", "0.9", "--fp32"])
    outcomes = run_grid(runs, root, "slurm", RESOURCES, wait=False, log=lambda line: None)
    assert outcomes == {run.name: "submitted" for run in runs}
    submitted = (fake_slurm / "submitted.sh").read_text()
    normalised = submitted.replace(str(root), "{RUNS_ROOT}").replace(shlex.quote(sys.executable), "{PYTHON}")
    _record_or_compare(normalised, "submitit_array.sbatch")
    # array task i runs runs[i]: submitit moved each pickle to 4242_<i>'s folder
    for index, run in enumerate(runs):
        pickle = root / ".grid-jobs" / f"4242_{index}" / f"4242_{index}_submitted.pkl"
        job = submitit.core.utils.DelayedSubmission.load(pickle).function
        assert (job.run, job.nodes, job.gpus_per_node) == (run, 2, 4)
    assert slurm_parameters(RESOURCES)["gpus_per_node"] == 4
    assert "gpus_per_node" not in slurm_parameters(RESOURCES, gpu_cuda=False)  # --device cpu: gloo ranks only


def test_standalone_sbatch_matches_the_recorded_script(tmp_path):
    runs = make_runs(paper_table([1, 2], "ffhq.pkl"), [0, 1], "runs/ablation", "data/liver.zip", ["--kimg", "100"],
                     absolute=False)  # fmt: skip
    from medgan_core.grid.launcher import sbatch_script

    multi = sbatch_script(runs, "runs/ablation", RESOURCES)
    _record_or_compare(multi, "standalone_2nodes.sbatch")
    single = sbatch_script(runs, "runs/ablation", JobResources(gpus_per_node=8, time_min=60))
    assert "--standalone --nproc_per_node 8" in single and "rdzv" not in single
    for script in (multi, single):  # bash accepts it
        path = tmp_path / "grid.sbatch"
        path.write_text(script)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    # bash expands array task i's ARGS to exactly run i's command line
    prelude = multi[: multi.index("\nHEAD=")] + '\nprintf "%s\\0" "${ARGS[@]}"\n'
    for index, run in enumerate(runs):
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(index))
        out = subprocess.run(["bash", "-c", prelude], capture_output=True, text=True, env=env, check=True).stdout
        assert out.split("\0")[:-1] == list(run.train_args), run.name


def test_book_page_shows_what_the_launcher_prints():
    """book/rerun_dgx.md: the command between the grid markers, and below it, its output verbatim."""
    page = BOOK_PAGE.read_text()
    match = re.search(
        r"<!-- grid-command -->\s*```bash\n(.*?)```.*?<!-- grid-sbatch -->\s*```bash\n(.*?)```", page, re.S
    )
    assert match, "book/rerun_dgx.md lost its grid command / sbatch blocks"
    command = shlex.split(match.group(1).replace("\\\n", " "))
    assert command[:3] == ["medgan", "grid", "submit"] and "--print-sbatch" in command
    result = CliRunner().invoke(main, command[1:])
    assert result.exit_code == 0, result.output
    assert result.output == match.group(2), "regenerate the sbatch block of book/rerun_dgx.md with the command above"
