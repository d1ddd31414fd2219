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
    assert options["ada_kimg"] == 100 and options["ema_rampup"] is None


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


# ---- issue 15.4: a bad --resume file is refused before any run folder is made --------------------------------------
def _train_in_process(args: list[str]):
    from click.testing import CliRunner

    from medgan_core.cli import main

    return CliRunner().invoke(main, ["train", *args])


def _tiny_run_args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return ["--outdir", str(tmp_path / "out"), "--data", str(data), *TINY_NET, "--batch", "8", "--kimg", "0.1", *extra]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, discs16) -> Path:
    """A finished 0.3 kimg run with --resume auto (one snapshot per 0.1 kimg tick)."""
    run_dir = tmp_path_factory.mktemp("short") / "run"
    args = ["--outdir", str(run_dir.parent), "--data", str(discs16), "--run-dir", str(run_dir), "--kimg", "0.3"]
    result = medgan_train([*args, *TINY_NET, *RUN_ARGS, "--resume", "auto"])
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir


def _bad_resume_files(folder: Path, snapshot: Path) -> dict[str, Path]:
    import pickle

    text = folder / "notes.txt"
    text.write_text("not a network\n")
    data = snapshot.read_bytes()
    truncated = folder / "network-snapshot-cut.safetensors"
    truncated.write_bytes(data[: len(data) - 1000])
    blob = pickle.dumps({"G": b"\0" * 4096, "D": list(range(100))}, protocol=4)
    cut_pickle = folder / "cut.pkl"
    cut_pickle.write_bytes(blob[: len(blob) // 2])
    return dict(text=text, truncated=truncated, missing=folder / "missing.pkl", truncated_pickle=cut_pickle)


@pytest.mark.parametrize("kind", ["text", "truncated", "missing", "truncated_pickle"])
def test_bad_resume_file_is_refused_before_a_run_folder(tmp_path, discs16, short_run, kind):
    snapshot = sorted(short_run.glob("network-snapshot-*.safetensors"))[-1]
    bad = _bad_resume_files(tmp_path, snapshot)[kind]
    result = _train_in_process(_tiny_run_args(tmp_path, discs16, "--resume", str(bad)))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert f"--resume {bad}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing was made


def test_auto_resume_needs_a_run_dir_and_no_snapshot_as_transfer_source(tmp_path, discs16, short_run):
    result = _train_in_process(_tiny_run_args(tmp_path, discs16, "--resume", "auto"))
    assert result.exit_code == 1 and "needs --run-dir" in result.output
    snapshot = sorted(short_run.glob("network-snapshot-*.safetensors"))[-1]
    args = _tiny_run_args(tmp_path, discs16, "--run-dir", str(tmp_path / "r"), "--auto-resume", "--resume")
    result = _train_in_process([*args, str(snapshot)])
    assert result.exit_code == 1 and "only a network to transfer from" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "r").exists()


# ---- --resume auto: a restarted run continues in its own folder; a finished one is never trained again -------------
def test_finished_run_is_never_trained_again(short_run, discs16):
    finished = json.loads((short_run / "finished.json").read_text())
    assert finished["kimg"] == pytest.approx(0.3, abs=0.01)
    assert finished["snapshot"] == sorted(short_run.glob("network-snapshot-*.safetensors"))[-1].name
    before = {p.name: p.stat().st_mtime_ns for p in short_run.iterdir()}
    args = ["--outdir", str(short_run.parent), "--data", str(discs16), "--run-dir", str(short_run), "--kimg", "0.3"]
    result = _train_in_process([*args, *TINY_NET, *RUN_ARGS, "--resume", "auto"])
    assert result.exit_code == 0, result.output
    assert "finished at kimg 0.3" in result.output and "nothing to do" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in short_run.iterdir()} == before


@pytest.mark.slow
def test_auto_resume_after_kill_9_continues_in_the_same_folder(tmp_path, discs16):
    """Killed after a tick past its newest snapshot: the restart drops that tick, continues from the snapshot with
    its kimg, tick, augment p and the run's own configuration, and the stats read as one uninterrupted run."""
    run_dir = tmp_path / "run"
    run_args = list(RUN_ARGS)
    run_args[run_args.index("--snap") + 1] = "3"  # a snapshot every 3 ticks
    base = ["--outdir", str(tmp_path), "--data", str(discs16), "--run-dir", str(run_dir), *TINY_NET, *run_args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    first = subprocess.Popen(
        [sys.executable, "-m", "medgan_core.train", *base, "--kimg", "50", "--resume", "auto"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not ((run_dir / "stats.jsonl").is_file() and len(read_stats(run_dir)) >= 5):  # ticks 0-4
            assert first.poll() is None and time.time() < deadline, first.stdout.read()
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    killed_stats = read_stats(run_dir)
    first_grid = (run_dir / "fakes_init.png").read_bytes()
    snapshot = sorted(run_dir.glob("network-snapshot-*.safetensors"))[-1]
    state = load_checkpoint(snapshot)["record"]["training_state"]
    dropped = sum(s["Progress/kimg"]["mean"] * 1000 > state["cur_nimg"] + 0.5 for s in killed_stats)
    assert dropped >= 1  # a tick past the snapshot was written, so the restart has something to drop

    result = medgan_train([*base, "--kimg", str(state["cur_nimg"] / 1000 + 0.3), "--resume", "auto"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"continuing {run_dir} from {snapshot.name}" in result.stdout
    assert f"dropped what the last attempt wrote after the snapshot: {dropped} stats lines" in result.stdout
    match = re.search(r"Resuming from .*: kimg ([\d.]+), tick (\d+), augment p ([\d.]+)", result.stdout)
    assert match and int(match.group(2)) == state["cur_tick"], result.stdout
    assert float(match.group(3)) == pytest.approx(state["augment_p"], abs=1e-4)
    stats = read_stats(run_dir)
    ticks = [int(s["Progress/tick"]["mean"]) for s in stats]
    assert ticks == list(range(len(stats)))  # one line per tick, no duplicates, no gaps
    kimgs = [s["Progress/kimg"]["mean"] for s in stats]
    assert kimgs == sorted(kimgs) and len(set(kimgs)) == len(kimgs)
    assert stats[: state["cur_tick"] + 1] == killed_stats[: state["cur_tick"] + 1]  # the kept part is untouched
    # a continuation keeps the run's configuration (unlike --resume SNAPSHOT, which NVIDIA treats as a new run)
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["ada_kimg"] == 500 and options["ema_rampup"] == 0.05
    assert options["resume_pkl"] == options["cli_options"]["continue_from"] == str(snapshot)
    log_ticks = [int(t) for t in re.findall(r"^tick (\d+) ", (run_dir / "log.txt").read_text(), re.M)]
    assert log_ticks == ticks  # the trainer's log.txt: each tick once as well
    assert (run_dir / "finished.json").is_file() and not list(run_dir.glob(".*.tmp"))
    assert (run_dir / "fakes_init.png").read_bytes() == first_grid  # the untrained G's grid, not the resumed one
