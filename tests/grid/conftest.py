"""A tiny training set and the tiny `medgan train` options of the trainer's tests, for the grid's runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import TINY_NET, disc_images, write_folder, write_zip

# 16x16 discs, batch 8, a tick and a snapshot every 0.1 kimg: one run of 0.3 kimg is a few seconds of CPU
TINY_RUN = [*TINY_NET, "--batch", "8", "--tick", "0.1", "--snap", "1", "--gamma", "1"]


@pytest.fixture(scope="session")
def discs16_small(tmp_path_factory) -> Path:
    """32 grayscale 16x16 disc images in a zip."""
    folder = write_folder(tmp_path_factory.mktemp("grid-discs"), disc_images(32, 16, seed=3))
    return write_zip(folder.parent / "discs16.zip", folder)
