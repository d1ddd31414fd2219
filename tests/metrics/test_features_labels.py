"""Conditional generators in metrics get labels as NVIDIA's metrics give them: one-hot classes or label vectors."""

import numpy as np
import torch

from medgan_core.metrics.features import generated_images


class _RecordingG(torch.nn.Module):
    z_dim, c_dim = 3, 2

    def forward(self, z, c, noise_mode="const"):
        self.c = c.clone()
        return torch.zeros([len(z), 1, 4, 4])


def test_class_indices_become_one_hot_and_vectors_pass_through():
    G = _RecordingG()
    generated_images(G, range(4), "cpu", labels=np.array([1, 1], dtype=np.int64))
    np.testing.assert_array_equal(G.c.numpy(), [[0, 1]] * 4)
    vectors = np.array([[0.25, 0.75], [0.25, 0.75]], dtype=np.float32)
    generated_images(G, range(4), "cpu", labels=vectors)
    np.testing.assert_array_equal(G.c.numpy(), [[0.25, 0.75]] * 4)
