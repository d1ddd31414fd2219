"""Cache of real-image feature statistics, keyed by dataset content, detector and options.

Computing the real statistics of a large dataset costs as much as the generated ones, and they never change,
so they are stored once in `<cache>/metrics/<key>.npz` (cache = `cache_dir`, $MEDGAN_CACHE or ~/.cache/medgan).
The key is the SHA-256 of a JSON record of the dataset's content hash (`ImageSource.content_hash`), the
detector's tag (format + weight-file hash) and the statistics options (max_items, capture flags), so a changed
image, weight file or option can never reuse stale numbers. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from medgan_core.metrics.statistics import FeatureStats
from medgan_core.metrics.weights import cache_root
from medgan_core.utils.io import atomic_write

CACHE_FORMAT_VERSION = 1


def stats_cache_key(content_hash: str, detector_tag: str, options: dict) -> str:
    record = {"version": CACHE_FORMAT_VERSION, "content": content_hash, "detector": detector_tag, **options}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def stats_cache_path(key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    return cache_root(cache_dir) / "metrics" / f"real-stats-{key}.npz"


def load_cached_stats(key: str, cache_dir=None) -> FeatureStats | None:
    """The cached FeatureStats for `key`, or None (a corrupt file is treated as absent and recomputed)."""
    path = stats_cache_path(key, cache_dir)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return FeatureStats.from_arrays(arrays)
    except (OSError, ValueError, KeyError):
        return None


def save_cached_stats(key: str, stats: FeatureStats, cache_dir=None) -> Path:
    path = stats_cache_path(key, cache_dir)
    with atomic_write(path) as f:
        np.savez(f, **stats.to_arrays())
    return path
