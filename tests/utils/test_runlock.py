"""One writer per run folder (utils/runlock.py): a live holder refuses a second writer, naming it; a killed holder's
lock is taken over; a holder on another host that never released is taken over only on the scheduler's word."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from medgan_core.utils.runlock import HOLDER_NAME, RunLocked, read_holder, run_lock

_HOLDER = """
import sys, time
from medgan_core.utils.runlock import run_lock
with run_lock(sys.argv[1], purpose="medgan train"):
    print("held", flush=True)
    time.sleep(600)
"""


def _start_holder(run_dir):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_live_holder_refuses_a_second_writer_and_a_killed_ones_lock_is_taken_over(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(RunLocked) as refused:
            with run_lock(tmp_path):
                pytest.fail("two writers in one folder")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and str(tmp_path) in message
        holder.send_signal(signal.SIGKILL)  # no release: the record still says it holds the folder
        holder.wait()
        assert read_holder(tmp_path)["pid"] == holder.pid and not read_holder(tmp_path)["released"]
        said = []
        with run_lock(tmp_path, log=said.append) as mine:
            assert mine["pid"] == os.getpid() and read_holder(tmp_path)["pid"] == os.getpid()
        assert len(said) == 1 and f"taking over the lock of medgan train on host {socket.gethostname()}" in said[0]
        assert f"pid {holder.pid}" in said[0]
        assert read_holder(tmp_path)["released"] is True
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_lock_is_released_at_the_end_of_the_block_even_on_an_error(tmp_path):
    with pytest.raises(KeyError):
        with run_lock(tmp_path):
            raise KeyError("the run failed")
    with run_lock(tmp_path, log=pytest.fail):  # released: nobody to take over from
        pass


def _fake_squeue(folder, stdout: str, stderr: str, code: int) -> str:
    folder.mkdir()
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\nprintf '{stdout}'\nprintf '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)
    return str(folder)


@pytest.mark.parametrize(
    "scheduler, taken",
    [
        ("none", False),  # no scheduler to ask: the record wins
        ("running", False),  # squeue lists the job
        ("ended", True),  # squeue no longer knows it
        ("same job", True),  # our own SLURM job id: the requeued instance of the record's job
    ],
)
def test_a_holder_on_another_host_is_taken_over_only_on_the_schedulers_word(tmp_path, monkeypatch, scheduler, taken):
    run = tmp_path / "run"
    run.mkdir()
    record = dict(purpose="medgan train", host="other-node", pid=1234, job_id="777", started_at="then", command="x")
    (run / HOLDER_NAME).write_text(json.dumps(dict(record, released=False)))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SUBMITIT_LOCAL_JOB_ID", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    if scheduler == "running":
        monkeypatch.setenv("PATH", _fake_squeue(tmp_path / "bin", "RUNNING\\n", "", 0))
    elif scheduler == "ended":
        monkeypatch.setenv("PATH", _fake_squeue(tmp_path / "bin", "", "slurm_load_jobs error: Invalid job id", 1))
    elif scheduler == "same job":
        monkeypatch.setenv("SLURM_JOB_ID", "777")
    if taken:
        with run_lock(run, log=lambda line: None):
            assert read_holder(run)["host"] == socket.gethostname()
        return
    with pytest.raises(RunLocked, match=r"other-node, pid 1234, job 777.*never released.*delete .*lock\.json"):
        with run_lock(run):
            pass
    assert read_holder(run)["host"] == "other-node"  # the refused writer changed nothing
