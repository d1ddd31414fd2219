"""Winograd F(4x4, 3x3) (`medgan_core.ops.winograd.conv3x3`) against oneDNN's direct `conv2d`, per layer shape.

The shapes are StyleGAN's 3x3 synthesis layers (C -> C channels at R x R, channels-last, float32); the ratio
(Winograd time / direct time, both in this process, interleaved) is what `winograd.pays()` encodes, and the error
column is the largest |difference| from a float64 `conv2d`, relative to the output's largest magnitude.

    python benchmarks/bench_winograd.py [--batch 8] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from medgan_core.ops import winograd

SHAPES = [(c, r) for c in (128, 256, 512) for r in (4, 8, 16, 32, 64)]  # (channels, resolution)
WIDTHS = (8, 4, 10, 12, 6, 6, 11)


def interleaved_medians(x: torch.Tensor, weight: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds of the direct and the Winograd convolution, called in turn (a warm-up call each first)."""
    transformed = winograd.kernel_transform(weight)
    calls = (lambda: F.conv2d(x, weight, padding=1), lambda: winograd.conv3x3(x, transformed))
    times: tuple[list[float], list[float]] = ([], [])
    for repeat in range(repeats + 1):
        for call, spent in zip(calls, times, strict=True):
            start = time.perf_counter()
            call()
            if repeat:
                spent.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}; medians of {args.repeats}")
    header = ("channels", "res", "direct ms", "winograd ms", "ratio", "taken", "rel. error")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, WIDTHS, strict=True)))
    for channels, res in SHAPES:
        x = torch.randn(args.batch, channels, res, res, generator=gen).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 3, 3, generator=gen) / (channels * 9) ** 0.5
        with torch.no_grad():
            direct, fast = interleaved_medians(x, weight, args.repeats)
            want = F.conv2d(x.double(), weight.double(), padding=1)
            got = winograd.conv3x3(x, winograd.kernel_transform(weight)).double()
            error = ((got - want).abs().max() / want.abs().max()).item()
        taken = "yes" if winograd.pays(channels, channels, res, res) else "no"
        row = (channels, res, f"{direct * 1e3:.1f}", f"{fast * 1e3:.1f}", f"{fast / direct:.2f}", taken)
        print(" ".join(f"{value:>{width}}" for value, width in zip((*row, f"{error:.1e}"), WIDTHS, strict=True)))


if __name__ == "__main__":
    main()
