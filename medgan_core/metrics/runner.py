"""Metric registry and the hook the trainer calls at each snapshot.

Protocol (NVIDIA's names):
- `fid50k_full`: FID of 50,000 generated images against all real images; `kid50k_full`: KID, same sets (reals
  capped at 1,000,000), 100 subsets of 1,000.
- `pr50k3_full`: improved precision and recall (precision_recall.py) of 50,000 generated images against up to
  200,000 reals, k = 3, VGG16 features (vgg16.py); results `pr50k3_full_precision`, `pr50k3_full_recall`.
- `is50k`: Inception Score of 50,000 generated images in 10 splits (inception_score.py); `is50k_mean`, `is50k_std`.
- Sized variants: `fid{N}k_full` / `kid{N}k_full` / `pr{N}k{K}_full`: N x 1000 generated images against all reals
  (e.g. `fid2k_full` for small runs); `fid{N}k` / `kid{N}k` / `pr{N}k{K}`: against at most N x 1000 reals
  (NVIDIA's legacy `fid50k`, `kid50k`, `pr50k3`; only these use the mirrored reals when `mirror` is set, as NVIDIA
  keeps the dataset's xflip for them alone); `is{N}k`.
Real statistics are cached (cache.py). Lower is better except for precision, recall and IS.
`list_metrics()` names the known metrics; `check_metric_names(names)` refuses unknown ones with one clear error
(the trainer calls it before training starts).

Other packages register metrics in `METRICS` as "module:function". A metric function is called with keyword
arguments G, data, device, rank, world_size, cache_dir, inception, progress, batch_size, and num_gen, vgg16 and
mirror when the caller sets them (accept **kwargs for the rest), and returns {result name: value}; its first result
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

import numpy as np
import torch

from medgan_core.data.images import ImageSource
from medgan_core.metrics import cache as stats_cache
from medgan_core.metrics.features import compute_generator_stats, compute_source_stats
from medgan_core.metrics.fid import fid_from_stats
from medgan_core.metrics.inception_score import inception_score
from medgan_core.metrics.kid import kernel_inception_distance
from medgan_core.metrics.precision_recall import precision_recall
from medgan_core.utils.heap import heap_reuse
from medgan_core.utils.io import write_whole

METRICS: dict[str, str] = {
    "fid50k_full": "medgan_core.metrics.runner:fid50k_full",
    "kid50k_full": "medgan_core.metrics.runner:kid50k_full",
    "mem1k": "medgan_core.evaluation.hooks:mem1k",
    "msssim1k": "medgan_core.evaluation.hooks:msssim1k",
    "frd256": "medgan_core.evaluation.hooks:frd256",
    "frd64": "medgan_core.evaluation.hooks:frd64",
    "div128": "medgan_core.evaluation.hooks:div128",
}
HIGHER_IS_BETTER: set[str] = {"div128"}  # registered metric names whose best value is the largest (also pr*, is*)
_SIZED_METRIC = re.compile(r"^(?P<kind>fid|kid|pr|is)(?P<thousands>\d+)k(?P<nhood>\d+)?(?P<full>_full)?$")
_SIZED_PATTERNS = ("fid<N>k[_full]", "kid<N>k[_full]", "pr<N>k<K>[_full]", "is<N>k")
_INCEPTION_MODULE = "medgan_core.metrics.runner"
NVIDIA_PR_MAX_REAL = 200000  # pr50k3_full's cap on real images


def _parse_sized(name: str) -> dict | None:
    """{'kind', 'num', 'nhood', 'full'} for a valid sized name ('fid2k_full', 'pr50k3', 'is10k'), else None."""
    match = _SIZED_METRIC.match(name)
    if match is None or int(match["thousands"]) == 0:
        return None
    kind, nhood, full = match["kind"], match["nhood"], bool(match["full"])
    if (kind == "pr") != (nhood is not None) or (kind == "is" and full) or (nhood is not None and int(nhood) == 0):
        return None
    return dict(kind=kind, num=int(match["thousands"]) * 1000, nhood=int(nhood or 0), full=full)


def list_metrics() -> list[str]:
    """Names of the registered metrics and NVIDIA's standard names, plus the patterns of the sized variants."""
    standard = ["fid50k_full", "kid50k_full", "pr50k3_full", "is50k", "fid50k", "kid50k", "pr50k3"]
    return sorted(set(METRICS) | set(standard)) + list(_SIZED_PATTERNS)


def is_known_metric(name: str) -> bool:
    return name in METRICS or _parse_sized(name) is not None


def check_metric_names(names) -> list[str]:
    """`names` (a list, or a comma-separated string; 'none' or '' for none) as a list, or ValueError naming every
    unknown name and the known ones. Checks names only (not weights: see `is_available`)."""
    if isinstance(names, str):
        names = [] if names.strip().lower() in ("", "none") else names.split(",")
    names = [str(name).strip() for name in names if str(name).strip()]
    unknown = [name for name in names if not is_known_metric(name)]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known metrics: {', '.join(list_metrics())}")
    return names


def higher_is_better(metric: str) -> bool:
    sized = _parse_sized(metric)
    return metric in HIGHER_IS_BETTER or (sized is not None and sized["kind"] in ("pr", "is"))


class MirroredSource:
    """NVIDIA's xflip dataset view: the N images, then their left-right mirror images (2N items)."""

    def __init__(self, source) -> None:
        self.source = source

    def __len__(self) -> int:
        return 2 * len(self.source)

    def batch(self, indices) -> torch.Tensor:
        n = len(self.source)
        images = self.source.batch([int(i) % n for i in indices])
        flipped = torch.tensor([int(i) >= n for i in indices])
        images[flipped] = images[flipped].flip(-1)
        return images

    def labels(self):
        labels = self.source.labels()
        return None if labels is None else np.concatenate([labels, labels])

    def content_hash(self) -> str:
        return self.source.content_hash() + "-xflip"


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
    vgg16: object = None
    mirror: bool = False

    def __post_init__(self) -> None:
        self._source: ImageSource | None = None
        self._detector = None

    @property
    def source(self) -> ImageSource:
        if self._source is None:
            self._source = ImageSource(self.data)
        return self._source

    def real_source(self, honour_mirror: bool):
        """The real images; mirrored (2N) when `mirror` is set and the metric keeps NVIDIA's xflip."""
        return MirroredSource(self.source) if honour_mirror and self.mirror else self.source

    @property
    def vgg16_detector(self):
        from medgan_core.metrics.detector import load_vgg16

        return load_vgg16(self.vgg16, device=self.device, progress=self.progress)

    @property
    def detector(self):
        if self._detector is None:
            from medgan_core.metrics.detector import load_inception

            # weights live in the user-wide cache ($MEDGAN_CACHE); cache_dir only holds real statistics
            self._detector = load_inception(self.inception, device=self.device, progress=self.progress)
        return self._detector


def _real_stats(opts: MetricOptions, max_items: int | None, capture_all: bool, detector=None, mirror=False,
                capture_mean_cov: bool = True):  # fmt: skip
    """Real-image statistics from the cache, or computed (all ranks) and cached (rank 0)."""
    detector = detector or opts.detector
    source = opts.real_source(mirror)
    options = {"max_items": max_items, "capture_all": capture_all, "capture_mean_cov": capture_mean_cov}
    key = stats_cache.stats_cache_key(source.content_hash(), detector.tag, options)
    stats = stats_cache.load_cached_stats(key, opts.cache_dir)
    found = torch.tensor([stats is not None], dtype=torch.int32, device=opts.device)
    if opts.world_size > 1:
        torch.distributed.broadcast(found, src=0)
    if bool(found.item()) and stats is not None:
        return stats
    stats = compute_source_stats(
        source, detector, max_items, capture_mean_cov, capture_all, opts.batch_size, opts.rank, opts.world_size,
        opts.progress, opts.device,
    )  # fmt: skip
    if opts.rank == 0:
        stats_cache.save_cached_stats(key, stats, opts.cache_dir)
    return stats


def _gen_stats(opts: MetricOptions, num_gen: int, capture_all: bool, detector=None, capture_mean_cov=True):
    if opts.G is None:
        raise ValueError("this metric needs a generator (G)")
    labels = opts.source.labels() if getattr(opts.G, "c_dim", 0) else None  # reals untouched when unconditional
    return compute_generator_stats(
        opts.G, detector or opts.detector, num_gen, labels, opts.device, capture_mean_cov=capture_mean_cov,
        capture_all=capture_all, batch_size=opts.batch_size, rank=opts.rank, world_size=opts.world_size,
        progress=opts.progress,
    )  # fmt: skip


def compute_fid(opts: MetricOptions, num_gen: int, max_real: int | None, mirror: bool = False) -> float:
    real = _real_stats(opts, max_real, capture_all=False, mirror=mirror)
    gen = _gen_stats(opts, opts.num_gen or num_gen, capture_all=False)
    return fid_from_stats(real, gen) if opts.rank == 0 else float("nan")


def compute_kid(opts: MetricOptions, num_gen: int, max_real: int | None, num_subsets=100, max_subset_size=1000,
                mirror: bool = False):  # fmt: skip
    real = _real_stats(opts, max_real, capture_all=True, mirror=mirror)
    gen = _gen_stats(opts, opts.num_gen or num_gen, capture_all=True)
    if opts.rank != 0:
        return float("nan")
    return kernel_inception_distance(real.get_all(), gen.get_all(), num_subsets, max_subset_size)


def compute_pr(opts: MetricOptions, num_gen: int, max_real: int | None, nhood_size: int = 3, mirror: bool = False):
    """(precision, recall) on VGG16 features, NVIDIA's pr50k3 computation (NaN on ranks other than 0)."""
    vgg16 = opts.vgg16_detector
    real = _real_stats(opts, max_real, capture_all=True, detector=vgg16, mirror=mirror, capture_mean_cov=False)
    gen = _gen_stats(opts, opts.num_gen or num_gen, capture_all=True, detector=vgg16, capture_mean_cov=False)
    if opts.rank != 0:
        return float("nan"), float("nan")
    return precision_recall(real.get_all(), gen.get_all(), nhood_size=nhood_size, device=opts.device)


def compute_is(opts: MetricOptions, num_gen: int, num_splits: int = 10):
    """(mean, std) of the Inception Score of G's images (NaN on ranks other than 0)."""
    from medgan_core.metrics.detector import InceptionProbabilities

    probabilities = InceptionProbabilities(opts.detector)
    gen = _gen_stats(opts, opts.num_gen or num_gen, capture_all=True, detector=probabilities, capture_mean_cov=False)
    if opts.rank != 0:
        return float("nan"), float("nan")
    return inception_score(gen.get_all(), num_splits)


def fid50k_full(**kwargs) -> dict[str, float]:
    return {"fid50k_full": compute_fid(MetricOptions(**kwargs), num_gen=50000, max_real=None)}


def kid50k_full(**kwargs) -> dict[str, float]:
    return {"kid50k_full": compute_kid(MetricOptions(**kwargs), num_gen=50000, max_real=1000000)}


def _sized_metric(name: str):
    """The function for 'fid2k', 'kid10k_full', 'pr50k3_full', 'is50k', ... (N x 1000 generated; `_full`: all
    reals (KID at most 1,000,000, PR at most 200,000), else at most N x 1000; see the module docstring)."""
    sized = _parse_sized(name)
    kind, num, full = sized["kind"], sized["num"], sized["full"]
    max_real = {"fid": None, "kid": 1000000, "pr": NVIDIA_PR_MAX_REAL}.get(kind) if full else num
    mirror = not full  # NVIDIA's *_full metrics set xflip=False; the legacy ones keep the dataset's

    def metric(**kwargs) -> dict[str, float]:
        opts = MetricOptions(**kwargs)
        if kind == "fid":
            return {name: compute_fid(opts, num, max_real, mirror=mirror)}
        if kind == "kid":
            return {name: compute_kid(opts, num, max_real, mirror=mirror)}
        if kind == "pr":
            precision, recall = compute_pr(opts, num, max_real, sized["nhood"], mirror=mirror)
            return {f"{name}_precision": precision, f"{name}_recall": recall}
        mean, std = compute_is(opts, num)
        return {f"{name}_mean": mean, f"{name}_std": std}

    return metric


def resolve_metric(name: str):
    """The metric function for `name` (imports its module); KeyError for unknown names."""
    target = METRICS.get(name)
    if target is None:
        if _parse_sized(name) is not None:
            return _sized_metric(name)
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(list_metrics())}")
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def is_available(metric: str, inception=None, vgg16=None) -> tuple[bool, str]:
    """(True, '') if `metric` can run here; else (False, why): unknown name, missing module or weights."""
    target = METRICS.get(metric)
    sized = _parse_sized(metric) if target is None else None
    if target is None and sized is None:
        return False, f"unknown metric {metric!r}"
    if sized is not None and sized["kind"] == "pr":
        if hasattr(vgg16, "feature_dim"):
            return True, ""
        from medgan_core.metrics.weights import VGG16WeightsNotFound, resolve_vgg16_weights

        try:
            resolve_vgg16_weights(vgg16)
        except VGG16WeightsNotFound as exc:
            return False, str(exc)
        return True, ""
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
    vgg16=None,
    mirror: bool = False,
) -> dict:
    """Compute `metric` for generator G against the real images in `data` (folder or zip).

    Returns NVIDIA's result dict {'results': {name: value}, 'metric', 'total_time' (s), 'total_time_str',
    'num_gpus'} followed by our 'num_gen' and 'detector'; values are NaN on ranks other than 0.
    vgg16: VGG16 weights for precision/recall (as `inception`); mirror: reals with their mirror images for the
    metrics that keep NVIDIA's xflip (fid<N>k, kid<N>k, pr<N>k<K> without _full).
    """
    function = resolve_metric(metric)
    kwargs = dict(G=G, data=data, device=torch.device(device), rank=rank, world_size=world_size,
                  cache_dir=cache_dir, inception=inception, progress=progress, batch_size=batch_size)  # fmt: skip
    if num_gen is not None:
        kwargs["num_gen"] = num_gen
    if vgg16 is not None:
        kwargs["vgg16"] = vgg16
    if mirror:
        kwargs["mirror"] = True
    start = time.time()
    with heap_reuse(enabled=kwargs["device"].type == "cpu"):  # generation and detector buffers reused on the CPU
        results = function(**kwargs)
    total_time = time.time() - start
    sized = _parse_sized(metric) if metric not in METRICS else None
    default_num_gen = sized["num"] if sized else None
    return {
        "results": {k: float(v) for k, v in results.items()},
        "metric": metric,
        "total_time": total_time,
        "total_time_str": format_time(total_time),
        "num_gpus": world_size,
        "num_gen": num_gen or default_num_gen,
        "detector": _detector_tag(metric, inception, vgg16, device),
    }


def format_time(seconds: float) -> str:
    """Durations as NVIDIA's dnnlib.util.format_time writes them: '45s', '2m 05s', '1h 02m 03s', '2d 03h 04m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02}m {s % 60:02}s"
    return f"{s // (24 * 3600)}d {(s // 3600) % 24:02}h {(s // 60) % 60:02}m"


def _detector_tag(metric: str, inception, vgg16, device) -> str | None:
    """Which detector produced the result (None for registered metrics); the detector is already loaded."""
    target = METRICS.get(metric, _INCEPTION_MODULE)
    if not target.startswith(_INCEPTION_MODULE):
        return None
    from medgan_core.metrics.detector import load_inception, load_vgg16

    if _parse_sized(metric)["kind"] == "pr":
        return getattr(load_vgg16(vgg16, device=device, progress=False), "tag", None)
    return getattr(load_inception(inception, device=device, progress=False), "tag", None)


def _primary_value(metric: str, results: dict) -> float:
    value = results.get(metric, next(iter(results.values()), float("nan")))
    return float(value)


NVIDIA_RESULT_KEYS = ("results", "metric", "total_time", "total_time_str", "num_gpus")


def metric_line(result: dict, run_dir: str | os.PathLike | None = None, snapshot=None) -> str:
    """The JSON line NVIDIA's metric_main.report_metric writes: its result keys in its order, `snapshot_pkl`
    (relative to the run folder when that is known and the path is absolute) and `timestamp`, then our
    `num_gen` and `detector` when present."""
    if snapshot is not None:
        snapshot = str(snapshot)
        if run_dir is not None and os.path.isabs(snapshot):
            snapshot = os.path.relpath(snapshot, run_dir)
    entry = {key: result[key] for key in NVIDIA_RESULT_KEYS if key in result}
    entry.update(snapshot_pkl=snapshot, timestamp=time.time())
    entry.update({key: result[key] for key in ("num_gen", "detector") if key in result})
    return json.dumps(entry)


def report_metric(result: dict, run_dir: str | os.PathLike, snapshot: str | os.PathLike | None = None) -> bool:
    """Append `metric_line(result)` to run_dir/metric-<name>.jsonl (NVIDIA's file; rewritten atomically, so a
    crash never leaves half a line); True if the value is the best so far."""
    metric = result["metric"]
    path = Path(run_dir) / f"metric-{metric}.jsonl"
    previous_lines = path.read_text().splitlines() if path.is_file() else []
    previous = [json.loads(line) for line in previous_lines if line.strip()]
    value = _primary_value(metric, result["results"])
    earlier = [_primary_value(metric, entry["results"]) for entry in previous]
    earlier = [v for v in earlier if math.isfinite(v)]
    higher = higher_is_better(metric)
    is_best = math.isfinite(value) and (not earlier or (value > max(earlier) if higher else value < min(earlier)))
    lines = [line for line in previous_lines if line.strip()] + [metric_line(result, run_dir, snapshot)]
    write_whole(path, "".join(line + "\n" for line in lines))
    return is_best
