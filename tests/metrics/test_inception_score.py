"""Inception Score: closed forms, NVIDIA's metrics/inception_score.py on the same probabilities, and the
probabilities themselves (softmax of pool3 @ W^T without the bias) against pytorch-fid's network."""

import math

import numpy as np
import pytest
import torch

from medgan_core.metrics.detector import InceptionProbabilities, build_pytorch_fid_detector
from medgan_core.metrics.inception_score import inception_score


def test_uniform_predictions_score_one():
    mean, std = inception_score(np.full([100, 1008], 1 / 1008, dtype=np.float64))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_confident_balanced_predictions_match_the_closed_form():
    """Each image puts a on its class, b elsewhere; each split holds k classes equally often:
    KL = a log(a / m) + (k - 1) b log(b / m) with m = (a + (k - 1) b) / k, the same for every image."""
    classes, k, a = 1008, 8, 0.9
    b = (1 - a) / (classes - 1)
    probs = np.full([160, classes], b)
    probs[np.arange(160), np.arange(160) % k] = a
    m = (a + (k - 1) * b) / k
    expected = math.exp(a * math.log(a / m) + (k - 1) * b * math.log(b / m))
    mean, std = inception_score(probs)
    assert mean == pytest.approx(expected, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)


def test_matches_nvidia_inception_score(nvidia_is):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(1000, 1008))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    ours = inception_score(probs)
    theirs = nvidia_is(probs)
    print(f"IS ours {ours}, NVIDIA {theirs}")
    assert ours[0] > 1.5 and abs(ours[0] - theirs[0]) <= 1e-4 and abs(ours[1] - theirs[1]) <= 1e-4


def test_probabilities_are_the_unbiased_softmax_of_pytorch_fid_logits(random_state_dict, pytorch_fid_model):
    images = torch.randint(0, 256, (3, 3, 40, 52), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    detector = build_pytorch_fid_detector(random_state_dict, "0" * 64)
    probs = InceptionProbabilities(detector)(images)
    with torch.no_grad():
        pool3 = pytorch_fid_model(images.float() / 255)[0].flatten(1)  # pytorch-fid: [0, 1] input, [N, 2048]
    expected = torch.softmax(pool3 @ random_state_dict["fc.weight"].t(), dim=1)
    assert probs.shape == (3, 1008) and torch.allclose(probs.sum(1), torch.ones(3))
    assert (probs - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_too_few_items_is_an_error():
    with pytest.raises(ValueError, match="N >= 10"):
        inception_score(np.full([5, 10], 0.1))
