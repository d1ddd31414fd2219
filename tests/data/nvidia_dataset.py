"""Run NVIDIA's own dataset code (dataset_tool.py, training/dataset.py) from a checkout, in a child process.

The checkout comes from the `nvidia_src` fixture ($MEDGAN_NVIDIA_SRC); a child process keeps NVIDIA's top-level
`training` and `dnnlib` packages out of this interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

_READ = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from training.dataset import ImageFolderDataset
dataset = ImageFolderDataset(sys.argv[2], use_labels=True)
images = np.stack([dataset[i][0] for i in range(len(dataset))])
labels = np.stack([dataset.get_label(i) for i in range(len(dataset))])
np.savez(sys.argv[3], images=images, labels=labels)
"""


def nvidia_read(src: Path, dataset: Path, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, C, H, W], labels float32 [N, c_dim]) as NVIDIA's ImageFolderDataset(use_labels=True)
    returns them."""
    out = scratch / "nvidia_read.npz"
    subprocess.run([sys.executable, "-c", _READ, str(src), str(dataset), str(out)], check=True, cwd=scratch)
    with np.load(out) as data:
        return data["images"], data["labels"]


def nvidia_dataset_tool(src: Path, source: Path, dest: Path, *options: str) -> None:
    """`python dataset_tool.py --source SOURCE --dest DEST [options]` from NVIDIA's checkout."""
    command = [sys.executable, str(src / "dataset_tool.py"), f"--source={source}", f"--dest={dest}", *options]
    subprocess.run(command, check=True, cwd=dest.parent, capture_output=True)
