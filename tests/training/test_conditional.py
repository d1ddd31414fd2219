"""A conditional run from a labelled zip with --mirror, DataLoader workers and frozen D layers."""

from __future__ import annotations

import torch

from medgan_core.checkpoint import load_checkpoint
from medgan_core.train import train
from tests.training.conftest import disc_images, write_folder, write_zip


def test_conditional_mirrored_zip_with_workers(tmp_path):
    folder = write_folder(tmp_path / "set", disc_images(12, 16), labels=[i % 3 for i in range(12)])
    data = write_zip(tmp_path / "set.zip", folder)
    torch.set_num_threads(1)
    result = train(outdir=str(tmp_path), data=str(data), run_dir=str(tmp_path / "run"), cond=True, mirror=True,
                   batch=8, kimg=0.016, tick=1, cbase=512, cmax=16, map=1, metrics="none", workers=2, freezed=1,
                   gamma=1, device="cpu", allocator="default")  # fmt: skip
    assert result["kimg"] == 0.016
    networks = load_checkpoint(next((tmp_path / "run").glob("network-snapshot-*.safetensors")))["networks"]
    assert networks["G"].c_dim == 3 and networks["D"].init_kwargs["c_dim"] == 3
    assert networks["D"].init_kwargs["block_kwargs"]["freeze_layers"] == 1
