"""Per-tick statistics against numpy, and the gradient clean-up NVIDIA applies before each optimiser step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan_core.training.distributed import all_reduce_gradients
from medgan_core.training.stats import StatsCollector


def test_collector_means_and_stds_match_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=n) for n in (3, 7, 5)]
    stats = StatsCollector(torch.device("cpu"))
    for chunk in chunks:
        stats.report("Loss/x", torch.from_numpy(chunk).float())
    stats.report("Loss/y", float("nan"))  # non-finite values are left out, as NVIDIA's training_stats does
    stats.report("Loss/y", 2.0)
    result = stats.collect()
    values = np.concatenate(chunks).astype(np.float32).astype(np.float64)
    assert result["Loss/x"]["num"] == 15
    assert result["Loss/x"]["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert result["Loss/x"]["std"] == pytest.approx(values.std(), rel=1e-6)
    assert result["Loss/y"] == dict(num=1, mean=2.0, std=0.0)
    assert stats.collect() == {}  # reset after collecting


def test_non_finite_gradients_are_cleaned():
    param = torch.nn.Parameter(torch.zeros(4))
    param.grad = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    untouched = torch.nn.Parameter(torch.zeros(2))  # no gradient: left alone
    all_reduce_gradients([param, untouched], world_size=1)
    assert param.grad.tolist() == [1.0, 0.0, 1e5, -1e5] and untouched.grad is None
