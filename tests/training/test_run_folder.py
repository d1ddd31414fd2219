"""A run folder has one writer, and a long run's faults are one line (issue 28), from the command line:

- a second `medgan train` into a folder a trainer writes is refused (exit 75) before writing anything, naming the
  holder; every stats line is the first run's;
- a full disk ends the run with exit 74 and one line naming the file, the bytes it needed, the last complete
  snapshot and the command that continues; that command, once space is freed, finishes the run with no tick lost
  or doubled.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medgan_core.training.autoresume import snapshot_nimg
from medgan_core.utils.runlock import read_holder
from tests.training.conftest import TINY_NET
from tests.utils.small_fs import resize, small_filesystem

RUN_ARGS = [*TINY_NET, "--batch", "8", "--tick", "0.1", "--snap", "1", "--gamma", "1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _train(run_dir: Path, data: Path, *extra: str, python: list[str] | None = None) -> list[str]:
    head = python or [sys.executable, "-m", "medgan_core.train"]
    return [*head, "--outdir", str(run_dir.parent), "--data", str(data), "--run-dir", str(run_dir), *RUN_ARGS, *extra]


def _stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def _wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "the trainer never got there"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_second_trainer_into_a_held_folder_is_refused_and_every_stats_line_is_the_firsts(tmp_path, discs16):
    run_dir = tmp_path / "R"
    first = subprocess.Popen(_train(run_dir, discs16, "--seed", "0", "--kimg", "50"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)  # fmt: skip
    try:
        _wait_for(lambda: (run_dir / "stats.jsonl").is_file() and _stats(run_dir), first)
        second = subprocess.run(_train(run_dir, discs16, "--seed", "1", "--kimg", "50"), capture_output=True,
                                text=True, env=ENV)  # fmt: skip
        assert second.returncode == 75, second.stderr
        errors = second.stderr.strip().splitlines()
        assert len(errors) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"{run_dir} is being written by medgan train on host" in errors[0] and f"pid {first.pid}," in errors[0]
        assert "--seed 0" in errors[0] and "its own --run-dir" in errors[0]
        assert "Training options" not in second.stdout  # stopped before anything
        first.send_signal(signal.SIGINT)  # the first stops after a last snapshot
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, output
    stats = _stats(run_dir)
    ticks = [int(line["Progress/tick"]["mean"]) for line in stats]
    assert ticks == list(range(len(ticks))) and len(ticks) >= 2
    printed = [float(m) for m in re.findall(r"^tick \d+ .*?  G (\S+)", output, re.M)]
    assert printed == [round(line["Loss/G/loss"]["mean"], 3) for line in stats]  # the first run's own lines
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["random_seed"] == 0
    assert (run_dir / "log.txt").read_text().count("Run folder:") == 1
    assert read_holder(run_dir)["pid"] == first.pid and read_holder(run_dir)["released"] is True


_FULL_AT_THIRD_SNAPSHOT = """
import errno, os, sys
real_fsync, seen = os.fsync, []
def fsync(fd):
    if os.fstat(fd).st_size > 1 << 20:  # a snapshot; the small files pass
        seen.append(fd)
        if len(seen) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_fsync(fd)
os.fsync = fsync
from medgan_core.train import main
main()
"""


def _expected_nimg(kimg: float, batch: int = 8, tick_kimg: float = 0.1) -> list[int]:
    """Images shown at each tick: tick 0 after the first batch, then every tick_kimg, to --kimg."""
    nimg, marks = batch, [batch]
    while nimg < kimg * 1000:
        start = nimg
        while nimg < kimg * 1000 and nimg < start + tick_kimg * 1000:
            nimg += batch
        marks.append(nimg)
    return marks


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_its_command_continues_with_no_tick_lost_or_doubled(tmp_path, discs16):
    with small_filesystem(tmp_path / "small", "30m") as small:  # two snapshots of ~12 MB fit, the third does not
        run_dir = (small or tmp_path) / "R"
        patched = None if small else [sys.executable, "-c", _FULL_AT_THIRD_SNAPSHOT]
        full = subprocess.run(_train(run_dir, discs16, "--kimg", "0.3", python=patched), capture_output=True,
                              text=True, env=ENV)  # fmt: skip
        assert full.returncode == 74, full.stdout + full.stderr
        errors = full.stderr.strip().splitlines()
        assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr
        snapshots = sorted(run_dir.glob("network-snapshot-*.safetensors"), key=lambda p: snapshot_nimg(p.name))
        assert len(snapshots) == 2 and not list(run_dir.glob(".*.tmp"))  # nothing half-written
        failed = re.search(r"cannot write (\S+): (.+?) \(needed (\d+) bytes", errors[0])
        assert failed and Path(failed.group(1)).parent == run_dir, errors[0]
        assert failed.group(2) == os.strerror(errno.ENOSPC) and re.match(r"network-snapshot-", Path(failed[1]).name)
        assert abs(int(failed.group(3)) - snapshots[-1].stat().st_size) < 1000  # a snapshot's size
        assert f"last complete snapshot {snapshots[-1]} " in errors[0]
        command = errors[0].split("then continue: ", 1)[1]
        if small:
            assert command.startswith("python -m medgan_core.train ") and command.endswith("--auto-resume")
            resize(small, "200m")  # space freed
            command = [sys.executable, *shlex.split(command)[1:]]
        else:
            assert command == f"the same training command with --run-dir {run_dir} --auto-resume"
            command = _train(run_dir, discs16, "--kimg", "0.3", "--auto-resume")
        resumed = subprocess.run(command, capture_output=True, text=True, env=ENV)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"continuing {run_dir} from {snapshots[-1].name}" in resumed.stdout
        stats = _stats(run_dir)
        assert [int(line["Progress/tick"]["mean"]) for line in stats] == [0, 1, 2, 3]
        assert [round(line["Progress/kimg"]["mean"] * 1000) for line in stats] == _expected_nimg(0.3)
        log_ticks = re.findall(r"^tick (\d+) ", (run_dir / "log.txt").read_text(), re.M)
        assert log_ticks == ["0", "1", "2", "3"] and (run_dir / "finished.json").is_file()
