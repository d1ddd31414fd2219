"""Winograd F(4x4, 3x3) (`medgan_core.ops.winograd.conv3x3`) against oneDNN's direct `conv2d`, per layer shape.

The shapes are StyleGAN's 3x3 synthesis layers (C -> C channels at R x R, channels-last, float32); the ratio
(Winograd time / direct time, both in this process, interleaved) is what `winograd.pays()` encodes, and the error
column is the largest |difference| from a float64 `conv2d`, relative to the output's largest magnitude.

With `--generator RES`, it times instead a whole G (bench_networks.py's, batch 8, inside `heap_reuse` as
generation runs it) with Winograd taken from each channel count on (`winograd.MIN_CHANNELS`), interleaved: the
rule `winograd.pays()` ships.

    python benchmarks/bench_winograd.py [--batch 8] [--threads 2] [--repeats 5]
    python benchmarks/bench_winograd.py --generator 256
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from bench_networks import interleaved_medians, network_kwargs  # this folder's timing and G configuration

from medgan_core.networks import Generator
from medgan_core.ops import winograd
from medgan_core.utils.heap import heap_reuse

SHAPES = [(c, r) for c in (128, 256, 512) for r in (4, 8, 16, 32, 64)]  # (channels, resolution)
WIDTHS = (8, 4, 10, 12, 6, 6, 11)


def generator_rules(resolution: int, batch: int, repeats: int) -> None:
    """Median seconds of one G call with Winograd from each channel count on (None: never), called in turn."""
    torch.manual_seed(0)
    G = Generator(**network_kwargs(resolution, 1)[0]).eval()
    z, c = torch.randn(batch, G.z_dim), torch.zeros(batch, 0)
    shipped = winograd.MIN_CHANNELS

    def with_rule(min_channels: int | None):
        def run():
            winograd.MIN_CHANNELS = min_channels if min_channels is not None else 1 << 30
            with heap_reuse(), torch.no_grad():
                G(z, c, noise_mode="const")

        return run

    rules = {f"from {n} channels" if n else "never": with_rule(n) for n in (None, 512, 256, 128, 64)}
    try:
        medians = interleaved_medians(rules, repeats=repeats, warmup=1)
    finally:
        winograd.MIN_CHANNELS = shipped
    print(f"G at {resolution}x{resolution}, batch {batch}, medians of {repeats}; Winograd taken (shipped: {shipped}):")
    for name, seconds in medians.items():
        print(f"  {name:<18} {seconds:7.3f} s  ({seconds / medians['never']:.2f}x never)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--generator", type=int, metavar="RES", help="time a whole G at RES under each rule")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.generator:
        generator_rules(args.generator, args.batch, args.repeats)
        return
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}; medians of {args.repeats}")
    header = ("channels", "res", "direct ms", "winograd ms", "ratio", "taken", "rel. error")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, WIDTHS, strict=True)))
    for channels, res in SHAPES:
        x = torch.randn(args.batch, channels, res, res, generator=gen).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 3, 3, generator=gen) / (channels * 9) ** 0.5
        with torch.no_grad():
            transformed = winograd.kernel_transform(weight)
            calls = {
                "direct": lambda x=x, weight=weight: F.conv2d(x, weight, padding=1),
                "winograd": lambda x=x, transformed=transformed: winograd.conv3x3(x, transformed),
            }
            medians = interleaved_medians(calls, repeats=args.repeats, warmup=1)
            direct, fast = medians["direct"], medians["winograd"]
            want = F.conv2d(x.double(), weight.double(), padding=1)
            got = winograd.conv3x3(x, transformed).double()
            error = ((got - want).abs().max() / want.abs().max()).item()
        taken = "yes" if winograd.pays(channels, channels, res, res) else "no"
        row = (channels, res, f"{direct * 1e3:.1f}", f"{fast * 1e3:.1f}", f"{fast / direct:.2f}", taken)
        print(" ".join(f"{value:>{width}}" for value, width in zip((*row, f"{error:.1e}"), WIDTHS, strict=True)))


if __name__ == "__main__":
    main()
