"""Multi-node torch.distributed on one machine: two torchrun node processes (`--nnodes 2 --nproc_per_node 1`, gloo
on CPU) meet at a c10d rendezvous on a free port of 127.0.0.1, built by the launcher's own `train_command` (the
command each SLURM node runs), and train to identical weights on both ranks, equal to rank 0's snapshot."""

from __future__ import annotations

import os
import subprocess

import pytest

from medgan_core.grid.job import train_command
from medgan_core.training.distributed import free_port
from tests.training.conftest import TINY_NET
from tests.training.test_distributed import ARGS, check_ranks_agree


@pytest.mark.slow
def test_two_torchrun_nodes_with_c10d_rendezvous_end_identical(tmp_path, discs16_small):
    run_dir = tmp_path / "run"
    train_args = ["--outdir", str(tmp_path), "--data", str(discs16_small), "--run-dir", str(run_dir), *TINY_NET, *ARGS]
    endpoint = f"127.0.0.1:{free_port()}"
    command = train_command(train_args, nodes=2, gpus_per_node=1, rdzv_endpoint=endpoint, rdzv_id="two-nodes")
    assert command[command.index("--nnodes") + 1] == "2" and command[command.index("--rdzv_backend") + 1] == "c10d"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    nodes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for _ in range(2)
    ]
    outputs = []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=420)[0])
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n----\n".join(outputs)
    assert "2 rank(s)" in "".join(outputs)  # one run of two ranks, not two runs of one
    check_ranks_agree(run_dir)
