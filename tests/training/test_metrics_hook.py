"""The loop's metrics hook: each snapshot's value goes to metric-<name>.jsonl, best.json names the best
snapshot (kept on disk), an unavailable metric is skipped with one warning."""

from __future__ import annotations

import json

import pytest
import torch

from medgan_core.metrics import runner
from medgan_core.training import loop as loop_module
from medgan_core.training.options import TrainOptions, build_config


def test_best_snapshot_is_tracked(tmp_path, monkeypatch, discs16):
    values = iter([5.0, 3.0, 4.0, 6.0])
    calls = []

    def fake_calc_metric(metric, G, data, device, rank=0, world_size=1, **kwargs):
        calls.append((metric, data, G.training))
        return dict(metric=metric, results={metric: next(values)}, total_time=0.0)

    monkeypatch.setattr(
        runner, "is_available", lambda m, inception=None: (m == "fakefid", "" if m == "fakefid" else "no weights")
    )
    monkeypatch.setattr(runner, "calc_metric", fake_calc_metric)
    monkeypatch.setattr(loop_module, "_AVAILABLE", {})
    torch.set_num_threads(1)
    opts = TrainOptions(
        outdir=str(tmp_path),
        data=str(discs16),
        batch=8,
        kimg=0.072,
        tick=0.024,
        snap=1,
        cbase=512,
        cmax=16,
        map=1,
        metrics="fakefid,kid50k_full",
        workers=0,
        gamma=1,
        aug="noaug",
    )
    config = build_config(opts, num_channels=1, resolution=16, label_dim=0)
    messages = []
    loop_module.training_loop(**dict(config, run_dir=str(tmp_path), device="cpu"), progress_fn=messages.append)
    snapshots = sorted(p.name for p in tmp_path.glob("network-snapshot-*.safetensors"))
    # as NVIDIA's: tick 0 right after the first batch (kimg 0.008), then every 0.024 kimg, and the last at 0.072
    assert snapshots == [f"network-snapshot-000000.{n:03d}.safetensors" for n in (8, 32, 56, 72)]
    lines = [json.loads(line) for line in (tmp_path / "metric-fakefid.jsonl").read_text().splitlines()]
    assert [line["results"]["fakefid"] for line in lines] == [5.0, 3.0, 4.0, 6.0]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["value"] == 3.0 and best["snapshot"] == snapshots[1] and (tmp_path / best["snapshot"]).is_file()
    assert all(data == str(discs16) and not training for _, data, training in calls)
    assert sum("kid50k_full unavailable" in m for m in messages) == 1
    assert not (tmp_path / "metric-kid50k_full.jsonl").exists()
    assert best["kimg"] == pytest.approx(0.032)


def test_stop_check_once_per_tick_and_one_snapshot_write(tmp_path, monkeypatch, discs16):
    """The stop request is agreed across ranks once per tick (not every iteration), and a snapshot whose metric
    improves is written once."""
    values = iter([5.0, 3.0, 1.0, 0.5])
    monkeypatch.setattr(runner, "is_available", lambda m, inception=None: (True, ""))
    monkeypatch.setattr(
        runner,
        "calc_metric",
        lambda metric, *a, **k: dict(metric=metric, results={metric: next(values)}, total_time=0),
    )
    monkeypatch.setattr(loop_module, "_AVAILABLE", {})
    stop_checks, writes = [], []
    real_any_rank, real_save = loop_module.distrib.any_rank, loop_module.save_snapshot
    monkeypatch.setattr(loop_module.distrib, "any_rank", lambda *a: stop_checks.append(1) or real_any_rank(*a))
    monkeypatch.setattr(
        loop_module, "save_snapshot", lambda path, **k: writes.append(path.name) or real_save(path, **k)
    )
    torch.set_num_threads(1)
    opts = TrainOptions(outdir=str(tmp_path), data=str(discs16), batch=8, kimg=0.096, tick=0.032, snap=1, cbase=512,
                        cmax=16, map=1, metrics="fakefid", workers=0, gamma=1, aug="noaug")  # fmt: skip
    config = build_config(opts, num_channels=1, resolution=16, label_dim=0)
    result = loop_module.training_loop(**dict(config, run_dir=str(tmp_path), device="cpu"), progress_fn=print)
    # 12 iterations in 4 ticks (tick 0 after the first, then 4, 4 and the last 3): one check per tick
    assert result["tick"] == 4 and len(stop_checks) == 4
    assert writes == sorted(p.name for p in tmp_path.glob("network-snapshot-*.safetensors"))  # each once
    assert len(writes) == 4 and json.loads((tmp_path / "best.json").read_text())["snapshot"] == writes[-1]
