"""Training statistics: per-tick means of every reported value, reduced across ranks, and their writers.

`StatsCollector.report(name, values)` accumulates count, sum and sum of squares in float64 on the values'
device (no host sync per step); `collect()` all-reduces them across ranks once per tick and returns
{name: {"num", "mean", "std"}} as NVIDIA's `training_stats` does, so stats.jsonl has NVIDIA's layout (one JSON
object per tick, each entry {num, mean, std}, plus "timestamp"), each line written whole or not at all.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from medgan_core.utils.io import append_whole


class StatsCollector:
    """Running moments of named scalar series since the last `collect()`."""

    def __init__(self, device: torch.device):
        self.device = device
        self._moments: dict[str, torch.Tensor] = {}  # name -> float64 [3]: count, sum, sum of squares

    def report(self, name: str, values: torch.Tensor | float) -> None:
        values = torch.as_tensor(values).detach().flatten().to(self.device, torch.float64)
        if values.numel() == 0:
            return
        finite = values[torch.isfinite(values)]
        moments = torch.stack([finite.new_tensor(float(finite.numel())), finite.sum(), finite.square().sum()])
        if name in self._moments:
            self._moments[name] += moments
        else:
            self._moments[name] = moments

    def collect(self, names_on_all_ranks: list[str] | None = None) -> dict[str, dict[str, float]]:
        """Means and standard deviations since the last call, over all ranks; resets the accumulators.

        In a distributed run every rank must report the same names (pass them as `names_on_all_ranks` to be safe:
        a name missing on one rank counts as zero samples there).
        """
        names = sorted(set(self._moments) | set(names_on_all_ranks or []))
        if not names:
            return {}
        stacked = torch.stack(
            [self._moments.get(n, torch.zeros(3, dtype=torch.float64, device=self.device)) for n in names]
        )
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(stacked)
        stacked = stacked.cpu()
        self._moments.clear()
        result = {}
        for name, (num, total, total_sq) in zip(names, stacked.tolist()):
            if num == 0:
                continue
            mean = total / num
            result[name] = dict(num=num, mean=mean, std=max(total_sq / num - mean * mean, 0.0) ** 0.5)
        return result


def scalar_entry(value: float) -> dict[str, float]:
    """A single value in stats.jsonl's {num, mean, std} layout."""
    return dict(num=1, mean=float(value), std=0.0)


class RunLogger:
    """Rank 0's writers: stats.jsonl (appended and flushed per tick) and TensorBoard events (when available)."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True, purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self._jsonl = open(self.run_dir / "stats.jsonl", "ab", buffering=0)  # each line whole or not at all
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir), purge_step=purge_step)  # events at steps >= it hidden
            except ImportError as exc:
                print(f"TensorBoard events disabled ({exc}); pip install tensorboard to get them")

    def write(self, stats: dict[str, dict[str, float]], global_step_kimg: float) -> None:
        line = dict(stats, timestamp=time.time())
        append_whole(self._jsonl, (json.dumps(line) + "\n").encode(), self.run_dir / "stats.jsonl")
        if self._tb is not None:
            step = int(global_step_kimg * 1000)  # nimg, as NVIDIA
            for name, value in stats.items():
                self._tb.add_scalar(name, value["mean"], global_step=step)
            self._tb.flush()

    def write_metric(self, name: str, value: float, kimg: float) -> None:
        if self._tb is not None:
            self._tb.add_scalar(f"Metrics/{name}", value, global_step=int(kimg * 1000))
            self._tb.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
