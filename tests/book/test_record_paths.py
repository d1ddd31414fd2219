"""A collected record holds no path of the machine that made it: the scratch folder becomes $MEDGAN_RECORD_WORK."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from medgan_core.book.records import collect


def test_collect_writes_the_scratch_folder_as_a_variable(tmp_path):
    work = tmp_path / "scratch"
    run = work / "runs" / "exp1-seed0"
    run.mkdir(parents=True)
    (run / "log.txt").write_text(f"Run folder: {run}\ndata {work}/data/mni.zip\n", encoding="utf-8")
    (run / "training_options.json").write_text(json.dumps({"run_dir": str(run)}), encoding="utf-8")
    (run / "fakes000001.png").write_bytes(b"\x89PNG not really")
    dest = collect(run, tmp_path / "record" / "exp1-seed0", all_grids=False, work=work)
    log = (dest / "log.txt").read_text(encoding="utf-8")
    assert str(tmp_path) not in log
    assert log == "Run folder: $MEDGAN_RECORD_WORK/runs/exp1-seed0\ndata $MEDGAN_RECORD_WORK/data/mni.zip\n"
    options = json.loads((dest / "training_options.json").read_text(encoding="utf-8"))
    assert options == {"run_dir": "$MEDGAN_RECORD_WORK/runs/exp1-seed0"}
    assert (dest / "fakes000001.png").read_bytes() == b"\x89PNG not really"


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="not run from a virtual environment (the test tool chain's)")
def test_collect_writes_the_virtual_environment_as_a_variable(tmp_path):
    run = tmp_path / "scratch" / "runs" / "mni-64"
    run.mkdir(parents=True)
    warning = f"{sys.prefix}/lib/python3/site-packages/torch/x.py:1: UserWarning: something\n"
    (run / "log.txt").write_text(warning, encoding="utf-8")
    dest = collect(run, tmp_path / "record" / "mni-64", all_grids=False, work=tmp_path / "scratch")
    log = (dest / "log.txt").read_text(encoding="utf-8")
    assert log == "$VIRTUAL_ENV/lib/python3/site-packages/torch/x.py:1: UserWarning: something\n"


RECORDS = Path(__file__).resolve().parents[2] / "book" / "records"
TICK_LINE = re.compile(r"\btick (\d+) +kimg ")
MACHINE_PATH = re.compile(r"(?:^|[\s'\"(=:])/(?:home|root|tmp|work|Users|opt|mnt|srv|var)/")


def test_recorded_logs_hold_each_tick_once_and_no_path_of_the_recording_machine():
    logs = sorted(RECORDS.glob("*/*/log.txt"))
    assert logs, f"no recorded run logs under {RECORDS}: the book's records are part of the repository"
    for log in logs:
        lines = log.read_text(encoding="utf-8").splitlines()
        ticks = [[int(tick) for tick in TICK_LINE.findall(line)] for line in lines]
        assert all(len(found) <= 1 for found in ticks), f"{log}: a tick written twice on one line"
        order = [found[0] for found in ticks if found]
        assert order and order == sorted(set(order)), f"{log}: ticks missing, repeated or out of order: {order}"
        machine = [line for line in lines if MACHINE_PATH.search(line)]
        assert not machine, f"{log}: a path of the recording machine: {machine[0]}"


def test_trained_seconds_sums_every_attempt_of_every_run(tmp_path):
    from medgan_core.book.records import trained_seconds

    def write(run, seconds):
        (tmp_path / run).mkdir()
        lines = [json.dumps({"Timing/total_sec": {"mean": s}}) for s in seconds]
        (tmp_path / run / "stats.jsonl").write_text("\n".join(lines) + "\n")

    write("a", [10.0, 20.0, 30.0, 5.0, 12.0])  # an attempt of 30 s, then a resumed one of 12 s
    write("b", [7.0])
    assert trained_seconds([tmp_path / "a", tmp_path / "b", tmp_path / "not-begun"]) == 30.0 + 12.0 + 7.0
