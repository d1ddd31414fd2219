"""Inception Score (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016), as NVIDIA's is50k.

    IS = exp( E_x KL( p(y | x) || p(y) ) ),

with p(y | x) the Inception graph's class probabilities of a generated image (1008-way softmax without the
output bias: detector.InceptionProbabilities) and p(y) their mean over the split. The generated set is cut into
`num_splits` = 10 consecutive parts (part i holds items [i N / 10, (i + 1) N / 10)); the score is the mean and
the standard deviation of the per-part values. Arithmetic follows NVIDIA's metrics/inception_score.py (NumPy, in
the dtype of the probabilities given, float32 from the detector).
"""

from __future__ import annotations

import numpy as np


def inception_score(probabilities, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score over `num_splits` parts of probabilities [N, classes]."""
    probs = np.asarray(probabilities)
    if probs.ndim != 2 or len(probs) < num_splits:
        raise ValueError(
            f"the Inception Score needs [N, classes] probabilities with N >= {num_splits}, got {probs.shape}"
        )
    num = len(probs)
    scores = []
    for i in range(num_splits):
        part = probs[i * num // num_splits : (i + 1) * num // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))  # [n, classes]
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
