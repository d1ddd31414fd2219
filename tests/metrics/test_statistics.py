"""Streaming float64 statistics against NumPy on the full array."""

import numpy as np
import pytest
import torch

from medgan_core.metrics.statistics import FeatureStats


def test_streaming_mean_and_covariance_match_numpy():
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(1000, 32)) * rng.uniform(0.1, 10, 32) + 1000).astype(np.float32)
    stats = FeatureStats()
    for start, size in zip(range(0, 1000, 97), [97] * 11):
        stats.append(torch.from_numpy(features[start : start + size]))
    reference = features.astype(np.float64)
    assert stats.num_items == 1000
    np.testing.assert_allclose(stats.mean, reference.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(reference, rowvar=False), rtol=1e-9, atol=1e-9)


def test_merge_equals_single_pass_and_memory_does_not_grow():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(2, 3, size=(50, 8))
    merged, single = FeatureStats(), FeatureStats()
    merged.append(a)
    other = FeatureStats()
    other.append(b)
    merged.merge(other)
    single.append(np.concatenate([a, b]))
    np.testing.assert_allclose(merged.mean, single.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.cov, single.cov, rtol=1e-12)
    assert merged._all == [] and merged._m2.shape == (8, 8)  # O(D^2) state, no stored features


def test_max_items_and_capture_all_and_round_trip():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(25, 4)).astype(np.float32)
    stats = FeatureStats(capture_all=True, max_items=20)
    stats.append(features[:15])
    stats.append(features[15:])
    assert stats.num_items == 20 and stats.is_full()
    np.testing.assert_array_equal(stats.get_all(), features[:20])
    restored = FeatureStats.from_arrays(stats.to_arrays())
    np.testing.assert_array_equal(restored.get_all(), features[:20])
    np.testing.assert_array_equal(restored.cov, stats.cov)
    assert restored.max_items == 20


def test_errors():
    stats = FeatureStats()
    with pytest.raises(ValueError, match="at least 2"):
        _ = stats.cov
    stats.append(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dimension changed"):
        stats.append(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="not captured"):
        stats.get_all()
