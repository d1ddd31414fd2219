"""Two CPU ranks with gloo: `torchrun --nproc_per_node 2 -m medgan_core.train` and `medgan train --gpus 2` end
with identical weights on both ranks, equal to rank 0's snapshot; a rank that dies ends the job non-zero."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medgan_core.checkpoint import load_checkpoint
from medgan_core.training.snapshot import weights_digest
from tests.training.conftest import TINY_NET

ARGS = [
    "--batch",
    "8",
    "--kimg",
    "0.2",
    "--tick",
    "0.1",
    "--snap",
    "1",
    "--gamma",
    "1",
    "--aug",
    "ada",
    "--debug-hashes",
]


def check_ranks_agree(run_dir: Path) -> None:
    digests = [json.loads((run_dir / "debug" / f"weights-rank{r}.json").read_text()) for r in (0, 1)]
    for key in ("G", "D", "G_ema", "augment_p"):
        assert digests[0][key] == digests[1][key], key
    snapshot = sorted(run_dir.glob("network-snapshot-*.safetensors"))[-1]
    networks = load_checkpoint(snapshot)["networks"]
    for key in ("G", "D", "G_ema"):
        assert weights_digest(networks[key]) == digests[0][key], key
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert stats[0]["Loss/G/loss"]["num"] == pytest.approx(8)  # tick 0: the first step's 8 images, both ranks
    assert stats[1]["Loss/G/loss"]["num"] == pytest.approx(104)  # tick 1: 13 steps x 8 images


def env_one_thread() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_end_identical(tmp_path, discs16):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "medgan_core.train",
        "--outdir",
        str(tmp_path),
        "--data",
        str(discs16),
        "--run-dir",
        str(run_dir),
        *TINY_NET,
        *ARGS,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env_one_thread())
    assert result.returncode == 0, result.stdout + result.stderr
    check_ranks_agree(run_dir)


@pytest.mark.slow
def test_spawned_ranks_end_identical_and_a_dead_rank_fails_the_job(tmp_path, discs16):
    run_dir = tmp_path / "run"
    base = [
        sys.executable,
        "-c",
        "from medgan_core.cli import main; main()",
        "train",
        "--gpus",
        "2",
        "--outdir",
        str(tmp_path),
        "--data",
        str(discs16),
        *TINY_NET,
    ]
    result = subprocess.run(
        [*base, "--run-dir", str(run_dir), *ARGS], capture_output=True, text=True, timeout=600, env=env_one_thread()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    check_ranks_agree(run_dir)

    # kill one rank of a long run: the job must stop with an error, not hang
    long_args = [a if a != "0.2" else "50" for a in ARGS]
    process = subprocess.Popen(
        [*base, "--run-dir", str(tmp_path / "long"), *long_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_one_thread(),
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not (tmp_path / "long" / "stats.jsonl").is_file():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.2)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        ranks = [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert ranks, children
        os.kill(ranks[-1], signal.SIGKILL)
        output, _ = process.communicate(timeout=180)
        assert process.returncode != 0, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
