"""Metric registry and the hook the trainer calls at each snapshot.

Protocol (NVIDIA's names):
- `fid50k_full`: FID of 50,000 generated images against all real images; `kid50k_full`: KID, same sets (reals
  capped at 1,000,000), 100 subsets of 1,000.
- `fid{N}k_full` / `kid{N}k_full`: N x 1000 generated images against all reals (e.g. `fid2k_full` for small runs);
  `fid{N}k` / `kid{N}k`: N x 1000 generated against at most N x 1000 reals (`fid50k` is NVIDIA's legacy metric).
Real statistics are cached (cache.py). Lower is better for every metric here.

Other packages register metrics in `METRICS` as "module:function". A metric function is called with keyword
arguments G, data, device, rank, world_size, cache_dir, inception, progress, batch_size, and num_gen when the
caller overrides the count (accept **kwargs for the rest), and returns {result name: value}; its first result
(or the one named like the metric) is the value tracked as best. Modules are imported only when a metric is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from medgan_core.data.images import ImageSource
from medgan_core.metrics import cache as stats_cache
from medgan_core.metrics.features import compute_generator_stats, compute_source_stats
from medgan_core.metrics.fid import fid_from_stats
from medgan_core.metrics.kid import kernel_inception_distance
from medgan_core.utils.io import atomic_write

METRICS: dict[str, str] = {
    "fid50k_full": "medgan_core.metrics.runner:fid50k_full",
    "kid50k_full": "medgan_core.metrics.runner:kid50k_full",
    "mem1k": "medgan_core.evaluation.hooks:mem1k",
    "msssim1k": "medgan_core.evaluation.hooks:msssim1k",
    "frd256": "medgan_core.evaluation.hooks:frd256",
}
HIGHER_IS_BETTER: set[str] = set()  # metric names whose best value is the largest
_SIZED_METRIC = re.compile(r"^(fid|kid)(\d+)k(_full)?$")
_INCEPTION_MODULE = "medgan_core.metrics.runner"


@dataclass
class MetricOptions:
    """Everything a metric function needs. `num_gen` overrides the count in the metric's name."""

    G: torch.nn.Module | None
    data: str | os.PathLike
    device: torch.device
    rank: int = 0
    world_size: int = 1
    cache_dir: str | os.PathLike | None = None
    inception: object = None
    progress: bool = False
    batch_size: int = 64
    num_gen: int | None = None

    def __post_init__(self) -> None:
        self._source: ImageSource | None = None
        self._detector = None

    @property
    def source(self) -> ImageSource:
        if self._source is None:
            self._source = ImageSource(self.data)
        return self._source

    @property
    def detector(self):
        if self._detector is None:
            from medgan_core.metrics.detector import load_inception

            # weights live in the user-wide cache ($MEDGAN_CACHE); cache_dir only holds real statistics
            self._detector = load_inception(self.inception, device=self.device, progress=self.progress)
        return self._detector


def _real_stats(opts: MetricOptions, max_items: int | None, capture_all: bool):
    """Real-image statistics from the cache, or computed (all ranks) and cached (rank 0)."""
    options = {"max_items": max_items, "capture_all": capture_all, "capture_mean_cov": True}
    key = stats_cache.stats_cache_key(opts.source.content_hash(), opts.detector.tag, options)
    stats = stats_cache.load_cached_stats(key, opts.cache_dir)
    found = torch.tensor([stats is not None], dtype=torch.int32, device=opts.device)
    if opts.world_size > 1:
        torch.distributed.broadcast(found, src=0)
    if bool(found.item()) and stats is not None:
        return stats
    stats = compute_source_stats(
        opts.source, opts.detector, max_items, True, capture_all, opts.batch_size, opts.rank, opts.world_size,
        opts.progress, opts.device,
    )  # fmt: skip
    if opts.rank == 0:
        stats_cache.save_cached_stats(key, stats, opts.cache_dir)
    return stats


def _gen_stats(opts: MetricOptions, num_gen: int, capture_all: bool):
    if opts.G is None:
        raise ValueError("this metric needs a generator (G)")
    return compute_generator_stats(
        opts.G, opts.detector, num_gen, opts.source.labels(), True, capture_all, opts.batch_size, opts.rank,
        opts.world_size, opts.progress, opts.device,
    )  # fmt: skip


def compute_fid(opts: MetricOptions, num_gen: int, max_real: int | None) -> float:
    real = _real_stats(opts, max_real, capture_all=False)
    gen = _gen_stats(opts, opts.num_gen or num_gen, capture_all=False)
    return fid_from_stats(real, gen) if opts.rank == 0 else float("nan")


def compute_kid(opts: MetricOptions, num_gen: int, max_real: int | None, num_subsets=100, max_subset_size=1000):
    real = _real_stats(opts, max_real, capture_all=True)
    gen = _gen_stats(opts, opts.num_gen or num_gen, capture_all=True)
    if opts.rank != 0:
        return float("nan")
    return kernel_inception_distance(real.get_all(), gen.get_all(), num_subsets, max_subset_size)


def fid50k_full(**kwargs) -> dict[str, float]:
    return {"fid50k_full": compute_fid(MetricOptions(**kwargs), num_gen=50000, max_real=None)}


def kid50k_full(**kwargs) -> dict[str, float]:
    return {"kid50k_full": compute_kid(MetricOptions(**kwargs), num_gen=50000, max_real=1000000)}


def _sized_metric(name: str):
    """The function for 'fid2k', 'kid10k_full', ... (N x 1000 generated; `_full`: all reals, else N x 1000)."""
    kind, thousands, full = _SIZED_METRIC.match(name).groups()
    num = int(thousands) * 1000
    max_real = (1000000 if kind == "kid" else None) if full else num

    def metric(**kwargs) -> dict[str, float]:
        opts = MetricOptions(**kwargs)
        if kind == "fid":
            return {name: compute_fid(opts, num, max_real)}
        return {name: compute_kid(opts, num, max_real)}

    return metric


def resolve_metric(name: str):
    """The metric function for `name` (imports its module); KeyError for unknown names."""
    target = METRICS.get(name)
    if target is None:
        if _SIZED_METRIC.match(name):
            return _sized_metric(name)
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}, fid<N>k[_full], kid<N>k[_full]")
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def is_available(metric: str, inception=None) -> tuple[bool, str]:
    """(True, '') if `metric` can run here; else (False, why): unknown name, missing module or weights."""
    target = METRICS.get(metric)
    if target is None and not _SIZED_METRIC.match(metric):
        return False, f"unknown metric {metric!r}"
    module_name = target.split(":")[0] if target else _INCEPTION_MODULE
    try:
        if importlib.util.find_spec(module_name) is None:
            return False, f"metric {metric!r} needs {module_name}, which is not installed in this version"
    except ModuleNotFoundError:
        return False, f"metric {metric!r} needs {module_name}, which is not installed in this version"
    if target and not hasattr(importlib.import_module(module_name), target.split(":")[1]):
        return False, f"{target} does not exist"
    if module_name == _INCEPTION_MODULE and not hasattr(inception, "feature_dim"):
        from medgan_core.metrics.weights import InceptionWeightsNotFound, resolve_inception_weights

        try:
            resolve_inception_weights(inception)
        except InceptionWeightsNotFound as exc:
            return False, str(exc)
    return True, ""


def calc_metric(
    metric: str,
    G,
    data,
    device,
    rank: int = 0,
    world_size: int = 1,
    cache_dir=None,
    inception=None,
    progress: bool = False,
    batch_size: int = 64,
    num_gen: int | None = None,
) -> dict:
    """Compute `metric` for generator G against the real images in `data` (folder or zip).

    Returns {'metric', 'results': {name: value}, 'total_time' (s), 'total_time_str', 'num_gen', 'num_gpus',
    'detector'}; values are NaN on ranks other than 0.
    """
    function = resolve_metric(metric)
    kwargs = dict(G=G, data=data, device=torch.device(device), rank=rank, world_size=world_size,
                  cache_dir=cache_dir, inception=inception, progress=progress, batch_size=batch_size)  # fmt: skip
    if num_gen is not None:
        kwargs["num_gen"] = num_gen
    start = time.time()
    results = function(**kwargs)
    total_time = time.time() - start
    match = _SIZED_METRIC.match(metric)
    default_num_gen = int(match.group(2)) * 1000 if match else None
    return {
        "metric": metric,
        "results": {k: float(v) for k, v in results.items()},
        "total_time": total_time,
        "total_time_str": time.strftime("%Hh %Mm %Ss", time.gmtime(total_time)),
        "num_gen": num_gen or default_num_gen,
        "num_gpus": world_size,
        "detector": _detector_tag(metric, inception, device, cache_dir),
    }


def _detector_tag(metric: str, inception, device, cache_dir) -> str | None:
    """Which Inception detector produced an FID/KID (None for other metrics); the detector is already loaded."""
    target = METRICS.get(metric, _INCEPTION_MODULE)
    if not target.startswith(_INCEPTION_MODULE):
        return None
    from medgan_core.metrics.detector import load_inception

    return getattr(load_inception(inception, device=device, progress=False), "tag", None)


def _primary_value(metric: str, results: dict) -> float:
    value = results.get(metric, next(iter(results.values()), float("nan")))
    return float(value)


def report_metric(result: dict, run_dir: str | os.PathLike, snapshot: str | os.PathLike | None = None) -> bool:
    """Append `result` to run_dir/metric-<name>.jsonl (rewritten atomically); True if it is the best so far."""
    metric = result["metric"]
    path = Path(run_dir) / f"metric-{metric}.jsonl"
    previous_lines = path.read_text().splitlines() if path.is_file() else []
    previous = [json.loads(line) for line in previous_lines if line.strip()]
    value = _primary_value(metric, result["results"])
    earlier = [_primary_value(metric, entry["results"]) for entry in previous]
    earlier = [v for v in earlier if math.isfinite(v)]
    higher = metric in HIGHER_IS_BETTER
    is_best = math.isfinite(value) and (not earlier or (value > max(earlier) if higher else value < min(earlier)))
    entry = dict(result, snapshot_pkl=None if snapshot is None else Path(snapshot).name, timestamp=time.time(),
                 is_best=is_best)  # fmt: skip
    with atomic_write(path, "w") as f:
        f.write("".join(line + "\n" for line in previous_lines if line.strip()))
        f.write(json.dumps(entry) + "\n")
    return is_best
