"""Acceptance of issue 16 on one machine: the local executor runs a 2 x 2 grid of tiny CPU runs to the end; one run
is killed mid-way (SIGKILL to its process group) and the launcher's retry continues it from its snapshot (kimg goes
on, no tick line twice); `medgan grid status` reports all four finished."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from medgan_core.checkpoint import load_checkpoint
from medgan_core.cli import main
from medgan_core.grid.job import read_state
from tests.grid.conftest import TINY_RUN


def _stats(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_local_grid_retries_a_killed_run_from_its_snapshot(tmp_path, discs16_small):
    table = tmp_path / "grid.csv"
    table.write_text("name,options\nbase,--aug noaug\nflips,--mirror --aug ada\n")
    root = tmp_path / "runs"
    command = [
        sys.executable, "-c", "from medgan_core.cli import main; main()", "grid", "submit", str(root),
        "--table", str(table), "--data", str(discs16_small), "--seeds", "0,1", "--executor", "local",
        "--max-parallel", "4", "--retries", "1", "--", *TINY_RUN, "--kimg", "0.3",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    launcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    victim = root / "base-seed0"
    try:
        deadline = time.time() + 240
        while len(list(victim.glob("network-snapshot-*.safetensors"))) < 2:  # tick 1 (tick 0 snapshots too)
            assert launcher.poll() is None and time.time() < deadline, launcher.stdout.read()
            time.sleep(0.05)
        os.killpg(read_state(victim)["pid"], signal.SIGKILL)  # the run's ranks: their own process group
        output, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 0, output
    assert re.search(r"base-seed0: attempt 1 failed \(run base-seed0 stopped \(killed by SIGKILL\)", output), output
    tail = re.search(r"base-seed0: attempt 1 failed .*Log tail:\n((?:    .*\n)+)", output)
    assert tail and re.search(r"^    tick 1 ", tail.group(1), re.M), output  # the failure comes with its log tail
    assert "base-seed0: attempt 2 submitted" in output and "4 finished" in output
    for other in ("base-seed1", "flips-seed0", "flips-seed1"):
        assert f"{other}: attempt 2" not in output

    # the retry continued from the snapshot the kill left (kimg and tick), and the stats read as one run
    console = (victim / "console.txt").read_text()
    continued = re.search(
        r"Resuming from .*network-snapshot-([\d.]+)\.safetensors: kimg ([\d.]+), tick (\d+)", console
    )
    assert continued, console
    snapshot = victim / f"network-snapshot-{continued.group(1)}.safetensors"
    state = load_checkpoint(snapshot)["record"]["training_state"]
    assert int(continued.group(3)) == state["cur_tick"] and state["cur_nimg"] < 300
    stats = _stats(victim)
    assert [int(s["Progress/tick"]["mean"]) for s in stats] == list(range(len(stats)))  # no tick twice, no gap
    kimgs = [s["Progress/kimg"]["mean"] for s in stats]
    assert kimgs == sorted(set(kimgs)) and kimgs[-1] == pytest.approx(0.3, abs=5e-3)
    log_ticks = re.findall(r"^tick (\d+) ", (victim / "log.txt").read_text(), re.M)
    assert [int(t) for t in log_ticks] == list(range(len(stats)))  # the trainer's log: each tick once too

    result = CliRunner().invoke(main, ["grid", "status", str(root), "--json"])
    rows = json.loads(result.output)
    assert [row["run"] for row in rows] == ["base-seed0", "base-seed1", "flips-seed0", "flips-seed1"]
    assert all(row["state"] == "finished" and row["kimg"] == pytest.approx(0.3, abs=5e-3) for row in rows), rows
    assert CliRunner().invoke(main, ["grid", "status", str(root)]).output.splitlines()[-1] == "4 runs: 4 finished"
