"""`medgan grid status`: each state read from the run folders (finished, running, failed, preempted, pending),
kimg and last tick time from stats.jsonl, the best metric from best.json; a table and --json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.grid.launcher import JobResources, run_grid, write_manifest
from medgan_core.grid.table import Experiment, make_runs


def _write_run(run_dir, kimg=None, best=None, job=None, finished=False):
    run_dir.mkdir(parents=True)
    (run_dir / "training_options.json").write_text("{}")
    if kimg is not None:
        lines = [{"Progress/kimg": {"num": 1, "mean": k, "std": 0}, "timestamp": 1.8e9 + k} for k in (kimg / 2, kimg)]
        (run_dir / "stats.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if best is not None:
        (run_dir / "best.json").write_text(json.dumps(best))
    if job is not None:
        (run_dir / "grid-job.json").write_text(json.dumps(dict(host=socket.gethostname(), **job)))
    if finished:
        (run_dir / "finished.json").write_text(json.dumps(dict(kimg=kimg, tick=3, snapshot=None, time=time.time())))


def test_status_reads_each_state_from_the_run_folders(tmp_path):
    root = tmp_path / "runs"
    runs = make_runs([Experiment(n, ()) for n in ("done", "live", "dead", "requeued", "waiting")], [0], root, "d.zip",
                     validate=False)  # fmt: skip
    write_manifest(root, runs, "local", JobResources())
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    best = dict(metric="fid50k_full", value=12.3456, kimg=0.2, snapshot="network-snapshot-000000.200.safetensors")
    _write_run(root / "done-seed0", kimg=0.4, best=best, job=dict(state="finished", pid=1), finished=True)
    _write_run(root / "live-seed0", kimg=0.2, job=dict(state="running", pid=os.getpid()))
    _write_run(root / "dead-seed0", kimg=0.1, job=dict(state="running", pid=dead.pid))
    _write_run(root / "requeued-seed0", kimg=0.3, job=dict(state="preempted", pid=dead.pid))

    result = CliRunner().invoke(main, ["grid", "status", str(root), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["run"]: row for row in json.loads(result.output)}
    assert list(rows) == [run.name for run in runs]
    assert {name: row["state"] for name, row in rows.items()} == {
        "done-seed0": "finished", "live-seed0": "running", "dead-seed0": "failed", "requeued-seed0": "preempted",
        "waiting-seed0": "pending",
    }  # fmt: skip
    assert rows["done-seed0"]["kimg"] == 0.4 and rows["waiting-seed0"]["kimg"] is None
    assert rows["done-seed0"]["last_tick"] == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1.8e9 + 0.4))
    assert rows["done-seed0"]["best"] == dict(metric="fid50k_full", value=12.3456, kimg=0.2)

    table = CliRunner().invoke(main, ["grid", "status", str(root)]).output.splitlines()
    assert table[0].split() == ["run", "state", "kimg", "last", "tick", "(UTC)", "best"]
    assert "fid50k_full 12.35 at kimg 0.2" in table[1] and table[5].split()[:3] == ["waiting-seed0", "pending", "-"]
    assert table[-1] == "5 runs: 1 failed, 1 finished, 1 pending, 1 preempted, 1 running"


def test_a_run_still_running_is_not_submitted_twice(tmp_path):
    root = tmp_path / "runs"
    runs = make_runs([Experiment("live", ()), Experiment("done", ())], [0], root, "d.zip", validate=False)
    _write_run(root / "live-seed0", kimg=0.2, job=dict(state="running", pid=os.getpid()))
    _write_run(root / "done-seed0", kimg=0.4, job=dict(state="finished", pid=1), finished=True)
    lines = []
    outcomes = run_grid(runs, root, "local", JobResources(), wait=False, log=lines.append)
    assert outcomes == {"live-seed0": "running", "done-seed0": "skipped"}
    assert any("live-seed0: still running" in line and "--force" in line for line in lines)
    assert not any("attempt" in line for line in lines)  # nothing submitted
