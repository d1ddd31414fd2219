"""Ctrl-C of `medgan grid submit --executor local` (issue 28): the runs it stopped write a last snapshot and are
marked "stopped" (not "failed"); the same submit later continues them to the end, every tick once."""

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

from medgan_core.cli import main
from medgan_core.grid.job import read_state
from medgan_core.grid.status import pid_alive
from tests.grid.conftest import TINY_RUN


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_marks_the_runs_stopped_and_the_same_submit_continues_them(tmp_path, discs16_small):
    root = tmp_path / "runs"
    command = [
        sys.executable, "-c", "from medgan_core.cli import main; main()", "grid", "submit", str(root),
        "--experiments", "1", "--data", str(discs16_small), "--seeds", "0", "--executor", "local", "--",
        *TINY_RUN, "--kimg", "1.2", "--tick", "0.4",
    ]  # fmt: skip
    # 1.2 kimg: long enough that the Ctrl-C after tick 0's snapshot lands before the end on a fast machine
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    run = root / "exp1-seed0"
    # a terminal's foreground job takes SIGINT; a job started with `&` by a non-interactive shell (as a CI runner
    # may start this suite) inherits SIGINT ignored, which would leave the launcher deaf to the Ctrl-C below
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True, preexec_fn=_default_sigint)  # fmt: skip
    try:
        deadline = time.time() + 240
        while not list(run.glob("network-snapshot-*.safetensors")):
            assert launcher.poll() is None and time.time() < deadline, launcher.stdout.read()
            time.sleep(0.05)
        trainer = read_state(run)["pid"]
        os.killpg(launcher.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: its whole foreground group
        output, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 130, output
    assert "exp1-seed0: stopped; the same submit continues it" in output, output
    assert not pid_alive(trainer)  # no orphan trains on
    assert read_state(run)["state"] == "stopped"
    rows = json.loads(CliRunner().invoke(main, ["grid", "status", str(root), "--json"]).output)
    assert [row["state"] for row in rows] == ["stopped"]
    console = (run / "console.txt").read_text()
    assert "stopped by SIGTERM" in console, console  # the ranks wrote a last snapshot, as on a preemption
    stopped_at = max(run.glob("network-snapshot-*.safetensors")).name

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "1 finished" in again.stdout, again.stdout + again.stderr
    assert f"continuing {run} from {stopped_at}" in (run / "console.txt").read_text()
    ticks = [int(json.loads(line)["Progress/tick"]["mean"]) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert ticks == [0, 1, 2, 3]
    assert re.findall(r"^tick (\d+) ", (run / "log.txt").read_text(), re.M) == ["0", "1", "2", "3"]
    assert read_state(run)["state"] == "finished"
