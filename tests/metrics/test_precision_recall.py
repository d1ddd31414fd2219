"""Improved precision/recall: closed forms and NVIDIA's metrics/precision_recall.py on the same features."""

import numpy as np
import pytest

from medgan_core.metrics.precision_recall import precision_recall


def _features(seed, num, dim=64, shift=0.0, scale=1.0):
    """Non-negative features (as after VGG16's ReLU) with some spread."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(shift, scale, size=(num, dim)), 0).astype(np.float32) * 10


def test_identical_sets_have_full_precision_and_recall():
    real = _features(0, 120)
    assert precision_recall(real, real.copy()) == (1.0, 1.0)


def test_far_apart_sets_have_none():
    real = _features(1, 100)
    assert precision_recall(real, real + 1000) == (0.0, 0.0)


def test_a_collapsed_generator_has_precision_but_no_recall():
    """Generated images all near one real image: inside the real manifold, covering almost none of it."""
    real = _features(2, 200)
    gen = real[:1] + np.random.default_rng(3).normal(0, 1e-3, size=(50, real.shape[1])).astype(np.float32)
    precision, recall = precision_recall(real, gen)
    assert precision == 1.0 and recall < 0.05


def test_batching_does_not_change_the_result():
    real, gen = _features(4, 230), _features(5, 170, shift=0.3, scale=1.2)
    assert precision_recall(real, gen) == precision_recall(real, gen, row_batch_size=37, col_batch_size=50)


@pytest.mark.parametrize("batches", [(10000, 10000), (64, 50)])
def test_matches_nvidia_precision_recall(nvidia_pr, batches):
    real, gen = _features(6, 300, dim=32), _features(7, 250, dim=32, shift=0.2, scale=0.8)
    ours = precision_recall(real, gen, nhood_size=3, row_batch_size=batches[0], col_batch_size=batches[1])
    theirs = nvidia_pr(real, gen, 3, *batches)
    print(f"precision/recall ours {ours}, NVIDIA {theirs}")
    assert 0 < ours[0] < 1 and 0 < ours[1] < 1  # a case where both matter
    assert abs(ours[0] - theirs[0]) <= 1e-4 and abs(ours[1] - theirs[1]) <= 1e-4


def test_too_few_items_is_an_error():
    with pytest.raises(ValueError, match="more than 3 items"):
        precision_recall(_features(8, 3), _features(9, 10))
