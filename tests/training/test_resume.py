"""kill -9 in the middle of a run, then --resume: every snapshot on disk is complete, and kimg, tick, augment p
and the optimiser state continue from the last snapshot. SIGTERM writes a last snapshot before exiting."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medgan_core.checkpoint import load_checkpoint
from tests.training.conftest import TINY_NET
from tests.training.test_smoke import medgan_train, read_stats

RUN_ARGS = ["--batch", "8", "--tick", "0.1", "--snap", "1", "--gamma", "1", "--aug", "ada", "--target", "0"]


def start_run(data: Path, run_dir: Path, kimg: float) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "medgan_core.train",
        "--outdir",
        str(run_dir.parent),
        "--data",
        str(data),
        "--run-dir",
        str(run_dir),
        "--kimg",
        str(kimg),
        *TINY_NET,
        *RUN_ARGS,
    ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )


def wait_for_snapshots(run_dir: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while len(list(run_dir.glob("network-snapshot-*.safetensors"))) < count:
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no snapshots appeared"
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_9_then_resume_continues(tmp_path, discs16):
    run_dir = tmp_path / "run"
    process = start_run(discs16, run_dir, kimg=50)
    wait_for_snapshots(run_dir, 3, process)
    time.sleep(1.0)  # let it get somewhere inside the next tick (possibly inside a snapshot write)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    snapshots = sorted(run_dir.glob("network-snapshot-*.safetensors"), key=lambda p: p.stat().st_mtime)
    assert len(snapshots) >= 3
    for path in snapshots:  # every file under a final name is complete and loads
        load_checkpoint(path)
    last = snapshots[-1]
    state = load_checkpoint(last)["record"]["training_state"]
    assert state["augment_p"] > 0  # --target 0: ADA raised p while D called reals real

    resumed_dir = tmp_path / "resumed"
    args = [
        "--outdir",
        str(tmp_path),
        "--data",
        str(discs16),
        "--run-dir",
        str(resumed_dir),
        "--resume",
        str(last),
        "--kimg",
        str(state["cur_nimg"] / 1000 + 0.2),
        *TINY_NET,
        *RUN_ARGS,
    ]
    result = medgan_train(args)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Resuming from .*: kimg ([\d.]+), tick (\d+), augment p ([\d.]+)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) == pytest.approx(state["cur_nimg"] / 1000, abs=0.05)
    assert int(match.group(2)) == state["cur_tick"]
    assert float(match.group(3)) == pytest.approx(state["augment_p"], abs=1e-4)
    stats = read_stats(resumed_dir)
    assert stats[0]["Progress/tick"]["mean"] == state["cur_tick"] + 1
    assert stats[0]["Progress/kimg"]["mean"] > state["cur_nimg"] / 1000
    # after a resume ADA moves p by 1 per 100 kimg: 8 * 4 / 100000 per update, at most 4 updates per 0.1 kimg
    step = 8 * 4 / 100_000
    assert abs(stats[0]["Progress/augment"]["mean"] - state["augment_p"]) <= 4 * step + 1e-7
    final = load_checkpoint(sorted(resumed_dir.glob("network-snapshot-*.safetensors"))[-1])
    final_state = final["record"]["training_state"]
    assert final_state["cur_nimg"] >= state["cur_nimg"] + 200
    assert final_state["batch_idx"] == state["batch_idx"] + (final_state["cur_nimg"] - state["cur_nimg"]) // 8
    options = json.loads((resumed_dir / "training_options.json").read_text())
    assert options["config"]["ada_kimg"] == 100 and options["config"]["ema_rampup"] is None


@pytest.mark.slow
def test_sigterm_writes_a_last_snapshot(tmp_path, discs16):
    run_dir = tmp_path / "run"
    process = start_run(discs16, run_dir, kimg=50)
    wait_for_snapshots(run_dir, 1, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Signal SIGTERM" in output and "stopped by SIGTERM" in output
    stats = read_stats(run_dir)
    last = sorted(run_dir.glob("network-snapshot-*.safetensors"), key=lambda p: p.stat().st_mtime)[-1]
    state = load_checkpoint(last)["record"]["training_state"]
    assert state["cur_nimg"] / 1000 == pytest.approx(stats[-1]["Progress/kimg"]["mean"])
