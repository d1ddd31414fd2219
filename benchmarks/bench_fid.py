"""FID feature extraction on CPU: our Inception vs pytorch-fid's with identical (random) weights, in one process.

Prints images/s for both, interleaved over several rounds (median), and their ratio (target >= 1.0); then the
peak traced memory (tracemalloc: Python and NumPy allocations) of streaming statistics over a folder of PNGs at
two image counts, which should stay flat (pytorch-fid keeps every feature vector: N x 2048 float64 grows).

    python benchmarks/bench_fid.py [--images 32] [--batch 32] [--rounds 3] [--mem-counts 16,64] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from medgan_core.data.images import ImageSource
from medgan_core.metrics.detector import build_pytorch_fid_detector
from medgan_core.metrics.features import compute_source_stats
from medgan_core.metrics.inception import random_fid_inception_state_dict
from medgan_core.utils.io import save_png


def pytorch_fid_model(state_dict):
    import pytorch_fid.inception as pfi

    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *args, **kwargs: state_dict):
        return pfi.InceptionV3([3]).eval()


def time_pytorch_fid(model, images: torch.Tensor, batch: int) -> float:
    """pytorch-fid's get_activations loop: float [0, 1] RGB batches (PIL convert + ToTensor), torch.no_grad."""
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = images[i : i + batch].repeat(1, 3, 1, 1).float().div(255)
            model(x)[0].squeeze(3).squeeze(2).cpu().numpy()
    return len(images) / (time.perf_counter() - start)


def time_ours(detector, images: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        detector(images[i : i + batch]).cpu().numpy()
    return len(images) / (time.perf_counter() - start)


def peak_streaming_memory(detector, count: int, batch: int, size: int = 64) -> float:
    """Peak traced MiB while computing FID statistics of `count` PNGs (the images are written first)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            save_png(rng.integers(0, 256, (size, size), dtype=np.uint8), Path(folder) / f"{i:05d}.png")
        source = ImageSource(folder)
        tracemalloc.start()
        compute_source_stats(source, detector, batch_size=batch)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="images per timed round")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (grayscale)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mem-counts", default="16,48", help="two image counts for the memory check")
    parser.add_argument("--mem-batch", type=int, default=8, help="batch for the memory check (several batches each)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    state_dict = random_fid_inception_state_dict(seed=0)
    reference = pytorch_fid_model(state_dict)
    ours = build_pytorch_fid_detector(state_dict, "0" * 64)
    images = torch.randint(0, 256, (args.images, 1, args.size, args.size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    time_pytorch_fid(reference, images[: args.batch], args.batch)  # warm-up both (oneDNN primitive caches)
    time_ours(ours, images[: args.batch], args.batch)
    theirs_rates, our_rates = [], []
    for round_index in range(args.rounds):
        theirs_rates.append(time_pytorch_fid(reference, images, args.batch))
        our_rates.append(time_ours(ours, images, args.batch))
        print(f"round {round_index}: pytorch-fid {theirs_rates[-1]:.2f} img/s, ours {our_rates[-1]:.2f} img/s")
    theirs, mine = statistics.median(theirs_rates), statistics.median(our_rates)
    print(f"feature extraction, {args.size}x{args.size} gray, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"  pytorch-fid {theirs:.2f} img/s | ours {mine:.2f} img/s | ratio ours/pytorch-fid {mine / theirs:.2f}")

    small, large = (int(n) for n in args.mem_counts.split(","))
    peak_small = peak_streaming_memory(ours, small, args.mem_batch)
    peak_large = peak_streaming_memory(ours, large, args.mem_batch)
    print(f"streaming statistics, peak traced memory: {small} images {peak_small:.1f} MiB | {large} images "
          f"{peak_large:.1f} MiB | ratio {peak_large / peak_small:.2f} (flat = 1.0; for comparison pytorch-fid "
          f"holds all features, N x 2048 float64: {50000 * 2048 * 8 / 2**20:.0f} MiB at 50k images)")  # fmt: skip


if __name__ == "__main__":
    main()
