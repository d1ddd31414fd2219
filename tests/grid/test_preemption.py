"""A run's job when SLURM preempts it or its time limit comes (USR2, which submitit turns into `checkpoint`): the
ranks get SIGTERM and write a last snapshot, the job hands back a fresh copy of itself, and that copy, requeued,
continues from the last snapshot to the end. A run that cannot train is reported failed with its log tail."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import submitit
from click.testing import CliRunner

from medgan_core.checkpoint import load_checkpoint
from medgan_core.cli import main
from medgan_core.grid.job import RunJob, read_state
from medgan_core.grid.table import Experiment, make_runs
from tests.grid.conftest import TINY_RUN


class Requeued(Exception):
    """What submitit does after `checkpoint` returns: requeue and leave the job (here: raise)."""


@pytest.mark.slow
def test_usr2_stops_with_a_last_snapshot_and_the_requeued_copy_continues(tmp_path, discs16_small, monkeypatch):
    local_env = dict(SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID="77", SUBMITIT_LOCAL_JOB_NUM_NODES="1")
    for key, value in dict(local_env, OMP_NUM_THREADS="1").items():  # node 0 of a one-node local job
        monkeypatch.setenv(key, value)
    run = make_runs(
        [Experiment("base", ("--aug", "noaug"))], [0], tmp_path, discs16_small, [*TINY_RUN, "--kimg", "50"]
    )[0]
    job = RunJob(run, stop_grace_s=120)
    requeued = []

    def on_usr2(signum, frame):  # submitit's handler: checkpoint, then requeue and exit
        requeued.append(job.checkpoint())
        raise Requeued

    def preempt_after_first_snapshot():
        while not list(run_dir.glob("network-snapshot-*.safetensors")):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR2)

    run_dir = tmp_path / run.name
    previous = signal.signal(signal.SIGUSR2, on_usr2)
    try:
        threading.Thread(target=preempt_after_first_snapshot, daemon=True).start()
        with pytest.raises(Requeued):
            job()
    finally:
        signal.signal(signal.SIGUSR2, previous)
    console = (run_dir / "console.txt").read_text()
    assert "Signal SIGTERM" in console and "stopped by SIGTERM" in console, console
    assert read_state(run_dir)["state"] == "preempted" and read_state(run_dir)["returncode"] == 128 + signal.SIGTERM
    last = max(run_dir.glob("network-snapshot-*.safetensors"), key=lambda p: p.stat().st_mtime)
    stopped_at = load_checkpoint(last)["record"]["training_state"]
    assert stopped_at["cur_nimg"] / 1000 == pytest.approx(
        json.loads((run_dir / "stats.jsonl").read_text().splitlines()[-1])["Progress/kimg"]["mean"]
    )

    # the requeued copy: a fresh RunJob for the same run (no process handle), shortened to finish soon
    delayed = requeued[0]
    assert isinstance(delayed, submitit.helpers.DelayedSubmission) and delayed.function is not job
    assert delayed.function.run == run and delayed.function._process is None
    kimg = stopped_at["cur_nimg"] / 1000 + 0.2
    delayed.function.run = make_runs([Experiment("base", ("--aug", "noaug"))], [0], tmp_path, discs16_small,
                                     [*TINY_RUN, "--kimg", f"{kimg:.3f}"])[0]  # fmt: skip
    result = delayed.result()
    assert result["state"] == "finished"
    console = (run_dir / "console.txt").read_text()
    assert f"continuing {run_dir} from {last.name}" in console
    ticks = [
        int(json.loads(line)["Progress/tick"]["mean"]) for line in (run_dir / "stats.jsonl").read_text().splitlines()
    ]
    assert ticks == list(range(len(ticks)))
    assert read_state(run_dir)["state"] == "finished"


@pytest.mark.slow
def test_a_run_that_cannot_train_fails_with_its_log_tail(tmp_path, discs16_small):
    table = tmp_path / "grid.csv"
    table.write_text(f"name,options\nok,--aug noaug\nbroken,--data {tmp_path / 'missing.zip'}\n")
    root = tmp_path / "runs"
    command = [sys.executable, "-c", "from medgan_core.cli import main; main()", "grid", "submit", str(root),
               "--table", str(table), "--data", str(discs16_small), "--seeds", "0", "--executor", "local",
               "--max-parallel", "2", "--retries", "0", "--", *TINY_RUN, "--kimg", "0.1"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "broken-seed0: FAILED after 1 attempt(s) (run broken-seed0 stopped (exit code 1)" in out
    failed = re.search(
        r"broken-seed0: FAILED after 1 attempt\(s\).*?Log tail \(.*console.txt\):\n((?:    .*\n)+)", out
    )
    assert failed and "missing.zip" in failed.group(1), out  # the tail names the trainer's error
    assert "ok-seed0: finished" in out and "failed: broken-seed0" in result.stderr
    rows = {
        row["run"]: row["state"]
        for row in json.loads(CliRunner().invoke(main, ["grid", "status", str(root), "--json"]).output)
    }
    assert rows == {"ok-seed0": "finished", "broken-seed0": "failed"}


def test_a_job_that_leaves_stops_its_ranks(tmp_path):
    """Ctrl-C of a local launcher reaches the job, not its ranks (their own session): the job stops them."""
    run = make_runs([Experiment("base", ())], [0], tmp_path, "d.zip", validate=False)[0]
    (tmp_path / run.name).mkdir()
    job = RunJob(run, stop_grace_s=5)
    job._process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    job._stop_ranks(tmp_path / run.name, node=0)
    assert job._process.returncode == -signal.SIGTERM
    assert read_state(tmp_path / run.name)["state"] == "stopped"
