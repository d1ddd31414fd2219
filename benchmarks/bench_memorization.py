"""Memorisation search throughput (generated x training pairs per second) on this machine.

Times `find_memorized` (downsample, normalise, one matrix product per chunk, top-k) for 64x64 and 256x256
images, comparing at 64x64 (the default) and at full resolution, and prints the speed-up over a per-pair loop
with numpy's corrcoef (the obvious baseline) measured in the same process on a subset.

    python benchmarks/bench_memorization.py [--gen 2000 --train 2000] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from medgan_core.evaluation.memorization import find_memorized


def loop_baseline_pairs_per_second(gen: np.ndarray, train: np.ndarray, size: int, budget_s: float = 3.0) -> float:
    factor = gen.shape[1] // size
    down = [
        img[..., 0].astype(np.float64).reshape(size, factor, size, factor).mean(axis=(1, 3)).ravel() for img in train
    ]
    pairs, start = 0, time.perf_counter()
    for image in gen:
        query = image[..., 0].astype(np.float64).reshape(size, factor, size, factor).mean(axis=(1, 3)).ravel()
        for ref in down:
            np.corrcoef(query, ref)
            pairs += 1
        if time.perf_counter() - start > budget_s:
            break
    return pairs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gen", type=int, default=2000)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"device {args.device}, {args.gen} generated x {args.train} training images, threads {torch.get_num_threads()}"
    )
    for resolution in (64, 256):
        gen = rng.integers(0, 256, (args.gen, resolution, resolution, 1), dtype=np.uint8)
        train = rng.integers(0, 256, (args.train, resolution, resolution, 1), dtype=np.uint8)
        hold = train[: max(2, args.train // 10)]
        for size in sorted({64, resolution}):
            find_memorized(gen[:64], train[:64], hold[:8], size=size, device=args.device)  # warm-up
            start = time.perf_counter()
            find_memorized(gen, train, hold, size=size, device=args.device)
            seconds = time.perf_counter() - start
            pairs = (args.gen + len(hold)) * args.train
            baseline = loop_baseline_pairs_per_second(gen, train, size)
            print(
                f"images {resolution}x{resolution}, compared at {size}x{size}: {pairs / seconds:,.0f} pairs/s "
                f"({seconds:.2f} s); per-pair numpy loop {baseline:,.0f} pairs/s; "
                f"ratio {pairs / seconds / baseline:,.0f}x"
            )


if __name__ == "__main__":
    main()
