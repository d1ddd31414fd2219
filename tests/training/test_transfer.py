"""--resume from an NVIDIA pickle is transfer learning: matching weights copied (RGB layers adapted to
grayscale), the report logged, kimg and augment p start at 0."""

from __future__ import annotations

import json

import torch

from medgan_core.checkpoint import load_checkpoint, load_network
from medgan_core.training import loop as loop_module
from medgan_core.training.options import TrainOptions, build_config


def test_transfer_from_nvidia_pickle(tmp_path, monkeypatch, parity_dir, discs32):
    pickle_path = parity_dir / "network-snapshot.pkl"
    nvidia = load_network(pickle_path)
    assert nvidia["augment_p"] > 0  # the source run had a non-zero p; transfer must not carry it over
    reference = json.loads((parity_dir / "config.json").read_text())
    opts = TrainOptions(
        outdir=str(tmp_path),
        data=str(discs32),
        batch=4,
        kimg=0.008,
        tick=1,
        cbase=1024,
        cmax=64,
        map=2,
        metrics="none",
        workers=0,
        gamma=1,
        resume=str(pickle_path),
        fp32=True,
    )
    config = build_config(opts, num_channels=1, resolution=32, label_dim=0)
    config["G_kwargs"].update(z_dim=reference["G_init_kwargs"]["z_dim"], w_dim=reference["G_init_kwargs"]["w_dim"])
    config["G_opt_kwargs"]["lr"] = config["D_opt_kwargs"]["lr"] = 0.0  # keep the copied weights as they are
    torch.set_num_threads(1)
    messages = []
    result = loop_module.training_loop(
        **dict(config, run_dir=str(tmp_path), device="cpu"), progress_fn=messages.append
    )
    log = "\n".join(messages)
    assert "Transfer learning from" in log and "augment p starts at 0" in log
    report = (tmp_path / "transfer_report.txt").read_text()
    assert "torgb" in report and "fromrgb" in report and "copied" in report
    assert result["kimg"] == 0.008
    state = load_checkpoint(next(tmp_path.glob("network-snapshot-*.safetensors")))
    trained = state["networks"]
    assert state["record"]["training_state"]["augment_p"] < 1e-3  # from 0, a couple of ADA steps at most
    source_G = nvidia["G"].state_dict()
    target_G = trained["G"].state_dict()
    copied = [k for k in source_G if k in target_G and source_G[k].shape == target_G[k].shape and "torgb" not in k]
    assert len(copied) > 10
    for key in copied:
        if key.endswith("w_avg"):  # the mapping's running average keeps moving during training
            continue
        torch.testing.assert_close(target_G[key], source_G[key], msg=key)
    # RGB -> gray: the target's toRGB has one output row where the source has three
    rgb_key = next(k for k in source_G if "torgb" in k and k.endswith("weight") and source_G[k].ndim == 4)
    assert source_G[rgb_key].shape[0] == 3 and target_G[rgb_key].shape[0] == 1
