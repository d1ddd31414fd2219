"""CPU timings of the StyleGAN2 networks: G inference, a G training step and a D training step with R1.

Configuration (issue 2): batch 8, 256x256, one image channel, FFHQ-like widths (channel_base 16384, channel_max
512, z = w = 512, 8 mapping layers). Prints medians over a few repeats.

The target is "at least as fast as NVIDIA's own networks running their reference ops on the same CPU". NVIDIA's
code is not part of this repository; pass `--nvidia-src DIR` (a checkout of NVlabs/stylegan3, imported by
`medgan_core.checkpoint.nvidia_code`) to time NVIDIA's Generator/Discriminator in the same process, with the same
weights, and print the ratios (NVIDIA time / our time: above 1 means ours is faster).

The floor (issue 18): G's convolutions as plain dense `conv2d` / `conv_transpose2d` calls with the weights
already modulated (`conv_floor`), timed in the same process, interleaved with G; `G inference / floor` says how
close generation comes to what its convolutions cost on this machine as direct convolutions (target <= 1.3;
NVIDIA / ours >= 1.5). Our G runs its wide low-resolution layers by Winograd's F(4x4, 3x3), with fewer
multiplies than a direct convolution, so the ratio may go below 1.
Our G is timed as `medgan generate` and the metrics call it (inside `utils.heap.heap_reuse`, which keeps glibc from
page-faulting fresh buffers; a no-op under the tuned allocator) and as a bare call; the floor runs inside
`heap_reuse` too (its best case); NVIDIA's G as its gen_images.py calls it.

The allocator (issue 4): glibc's default allocator page-faults gigabytes of fresh memory per CPU step, and
`medgan train` runs with a tuned glibc by default (medgan_core/training/allocator.py). glibc reads its settings
only at start-up, so `--compare-allocators default,tuned` reruns this benchmark in one subprocess per allocator,
each timing both networks, and prints every figure plus the issue's target ratio: NVIDIA's networks in the
default environment over ours with the tuned allocator (above 2 meets the target).

    python benchmarks/bench_networks.py [--quick] [--repeats 3] [--nvidia-src ../nvidia_src]
    python benchmarks/bench_networks.py --nvidia-src ../nvidia_src --compare-allocators default,tuned
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from medgan_core.networks import Discriminator, Generator
from medgan_core.utils.heap import heap_reuse, heap_reuse_reason

BENCH_MARKER = "MEDGAN_BENCH_ALLOCATOR"


def network_kwargs(resolution: int, channels: int) -> tuple[dict, dict]:
    g_kwargs = dict(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=8),
        channel_base=16384,
        channel_max=512,
        num_fp16_res=4,
        conv_clamp=256,
    )
    d_kwargs = dict(
        c_dim=0,
        img_resolution=resolution,
        img_channels=channels,
        architecture="resnet",
        channel_base=16384,
        channel_max=512,
        num_fp16_res=4,
        conv_clamp=256,
        epilogue_kwargs=dict(mbstd_group_size=4),
    )
    return g_kwargs, d_kwargs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(tasks: dict[str, Callable], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per task, the tasks run in turn within each repeat so that drifts hit all of them alike."""
    for _ in range(warmup):
        for fn in tasks.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def g_inference(G, z, c, reuse_heap: bool = False):
    """One G call without autograd; reuse_heap: inside `heap_reuse`, as `medgan generate` and the metrics call G."""

    def run():
        with heap_reuse(enabled=reuse_heap), torch.no_grad():
            G(z, c, noise_mode="const")

    return run


def conv_floor(G, batch: int, memory_format: torch.memory_format) -> Callable:
    """G's convolutions as plain dense calls with the weights already modulated: the floor of direct convolutions.

    One shared [C_out, C_in, k, k] weight per layer (what a per-sample weight costs in multiply-adds), no
    modulation, demodulation, upsampling filter, noise, bias or activation. An upsampling layer is the stride-2
    transposed convolution G runs (the FIR filter after it is left out); toRGB is its 1x1 convolution. Inputs are
    made beforehand (random, one tensor per shape), so only the convolutions are timed. Pass channels-last, the
    faster layout for CPU convolutions (the same calls on NCHW tensors took twice as long here).
    """
    from medgan_core.networks.generator import SynthesisLayer, ToRGBLayer

    gen = torch.Generator().manual_seed(2)
    inputs: dict[tuple, torch.Tensor] = {}
    calls = []
    for block in (getattr(G.synthesis, f"b{res}") for res in G.synthesis.block_resolutions):
        for layer in block.children():
            if isinstance(layer, SynthesisLayer):
                in_res = layer.resolution // layer.up
            elif isinstance(layer, ToRGBLayer):
                in_res = block.resolution
            else:
                continue
            shape = (batch, layer.in_channels, in_res, in_res)
            if shape not in inputs:
                inputs[shape] = torch.randn(shape, generator=gen).contiguous(memory_format=memory_format)
            weight = torch.randn(layer.weight.shape, generator=gen)
            if getattr(layer, "up", 1) > 1:
                weight = weight.transpose(0, 1).contiguous(memory_format=memory_format)  # [C_in, C_out, k, k]
                calls.append((F.conv_transpose2d, inputs[shape], weight, dict(stride=layer.up)))
            else:
                weight = weight.contiguous(memory_format=memory_format)
                calls.append((F.conv2d, inputs[shape], weight, dict(padding=weight.shape[-1] // 2)))

    def run():
        with heap_reuse(), torch.no_grad():  # the floor at its best: output buffers reused as in medgan's G calls
            for conv, x, weight, kwargs in calls:
                conv(x, weight, **kwargs)

    return run


def g_step(G, D, z, c):
    """The generator's main phase: non-saturating loss through D, backward into G (and D's activations)."""

    def run():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        F.softplus(-D(G(z, c), c)).mean().backward()

    return run


def d_step_r1(G, D, z, c, real, r1_gamma: float = 1.0):
    """D loss on fakes and reals with the R1 penalty: a double backward through D."""

    def run():
        D.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = G(z, c)
        real_img = real.detach().requires_grad_(True)
        real_logits = D(real_img, c)
        (r1_grads,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
        r1_penalty = r1_grads.square().sum(dim=[1, 2, 3])
        fake_logits = D(fake, c)
        loss_d = F.softplus(fake_logits) + F.softplus(-real_logits) + r1_penalty.unsqueeze(1) * (r1_gamma / 2)
        loss_d.mean().backward()

    return run


def load_nvidia(nvidia_src: Path):
    """NVIDIA's `training.networks_stylegan2` from the given checkout (pkg_resources stand-in where needed)."""
    from medgan_core.checkpoint.nvidia_code import import_nvidia

    return import_nvidia(nvidia_src).networks


def compare_allocators(choices: list[str]) -> None:
    """Run this benchmark once per allocator in a fresh process; print the figures and cross ratios."""
    from medgan_core.training.allocator import MARKER as ALLOCATOR_MARKER
    from medgan_core.training.allocator import allocator_env

    figures: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for choice in choices:
            out = Path(tmp) / f"{choice}.json"
            env = allocator_env(choice, base={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")})
            env[BENCH_MARKER] = env.pop(ALLOCATOR_MARKER)  # a process `medgan train` did not start: heap_reuse acts
            print(f"--- allocator {choice}", flush=True)
            # the same options; the later, empty --compare-allocators makes the child time instead of recursing
            command = [sys.executable, __file__, *sys.argv[1:], "--compare-allocators", "", "--json", str(out)]
            subprocess.run(command, env=env, check=True)
            figures[choice] = json.loads(out.read_text())
    print("\nseconds (median)        " + "".join(f"{f'{net} @ {c}':>22}" for c in choices for net in figures[c]))
    tasks = list(figures[choices[0]]["medgan"])
    for task in tasks:
        row = "".join(f"{figures[c][net].get(task, float('nan')):22.3f}" for c in choices for net in figures[c])
        print(f"{task:<24}{row}")
    for choice in choices:
        ours = figures[choice]["medgan"]["G inference"]
        print(f"ratio medgan G inference / floor @ {choice:<10} {ours / figures[choice]['floor']['G inference']:6.2f}x"
              "  (target <= 1.3)")  # fmt: skip
        if "nvidia" in figures[choice]:
            print(f"ratio nvidia / medgan G inference @ {choice:<9} "
                  f"{figures[choice]['nvidia']['G inference'] / ours:6.2f}x  (target >= 1.5)")  # fmt: skip
    baseline, tuned = choices[0], choices[-1]
    for task in tasks:
        ours = figures[tuned]["medgan"][task]
        gain = figures[baseline]["medgan"][task] / ours
        print(f"ratio medgan @ {baseline} / medgan @ {tuned}  {task:<20} {gain:6.2f}x")
        if "nvidia" in figures[baseline]:
            ratio = figures[baseline]["nvidia"][task] / ours
            print(f"ratio nvidia @ {baseline} / medgan @ {tuned}  {task:<20} {ratio:6.2f}x  (target >= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="one repeat; warm-up for inference only (a few minutes on 2 cores)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--nvidia-src", type=Path, default=None, help="folder with NVIDIA's stylegan3 code")
    parser.add_argument("--skip-train", action="store_true", help="time G inference only")
    parser.add_argument(
        "--compare-allocators",
        default=None,
        help="comma-separated allocators (default, tuned, jemalloc, tcmalloc), one subprocess each; first = baseline",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the timings to this JSON file")
    args = parser.parse_args()
    if args.compare_allocators:
        compare_allocators([c.strip() for c in args.compare_allocators.split(",") if c.strip()])
        return
    repeats, warmup = (1, 0) if args.quick else (args.repeats, 1)
    if args.threads:
        torch.set_num_threads(args.threads)

    g_kwargs, d_kwargs = network_kwargs(args.resolution, args.channels)
    torch.manual_seed(0)
    nets = {"medgan": (Generator(**g_kwargs).cpu(), Discriminator(**d_kwargs).cpu())}
    if args.nvidia_src is not None:
        nv = load_nvidia(args.nvidia_src)
        G_nv, D_nv = nv.Generator(**g_kwargs), nv.Discriminator(**d_kwargs)
        G_nv.load_state_dict(nets["medgan"][0].state_dict(), strict=True)  # same weights in both
        D_nv.load_state_dict(nets["medgan"][1].state_dict(), strict=True)
        nets["nvidia"] = (G_nv, D_nv)

    generator = torch.Generator().manual_seed(1)
    z = torch.randn(args.batch, 512, generator=generator)
    c = torch.zeros(args.batch, 0)
    real = torch.randn(args.batch, args.channels, args.resolution, args.resolution, generator=generator)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, "
        f"{args.resolution}x{args.resolution}x{args.channels}, channel_base 16384; repeats {repeats}"
    )

    if "nvidia" in nets:
        with torch.no_grad():
            ours = nets["medgan"][0](z[:2], c[:2], noise_mode="const")
            theirs = nets["nvidia"][0](z[:2], c[:2], noise_mode="const")
        print(f"same weights, G output max |ours - nvidia| = {(ours - theirs).abs().max().item():.2e}")

    results: dict[str, dict[str, float]] = {name: {} for name in nets}
    # ours as `medgan generate` / the metrics run G (heap reuse), and the bare call; NVIDIA's as gen_images.py runs it
    inference = {name: g_inference(G, z, c, reuse_heap=name == "medgan") for name, (G, D) in nets.items()}
    G_ours = nets["medgan"][0]
    inference["medgan bare"] = g_inference(G_ours, z, c)
    inference["floor"] = conv_floor(G_ours, args.batch, torch.channels_last)
    medians = interleaved_medians(inference, repeats, max(warmup, 1))
    reuse = heap_reuse_reason() or "on"
    print(f"heap reuse: {reuse} (medgan's generation and the floor; not the bare call, not NVIDIA)")
    for name in nets:
        results[name]["G inference"] = medians[name]
        print(f"{name:>7}  G inference          {medians[name]:8.3f} s", flush=True)
    results["medgan bare"] = {"G inference": medians["medgan bare"]}
    print(f" medgan  G inference, bare call {medians['medgan bare']:8.3f} s", flush=True)
    results["floor"] = {"G inference": medians["floor"]}
    print(f"  floor  G's convolutions, dense   {medians['floor']:8.3f} s", flush=True)
    print(f"ratio medgan G inference / floor      {medians['medgan'] / medians['floor']:6.2f}x  (target <= 1.3)")
    if not args.skip_train:
        phases = {
            "G step": lambda G, D: g_step(G, D, z, c),
            "D step with R1": lambda G, D: d_step_r1(G, D, z, c, real),
        }
        for task, make in phases.items():
            steps = {name: make(G, D) for name, (G, D) in nets.items()}
            for name, seconds in interleaved_medians(steps, repeats, warmup).items():
                results[name][task] = seconds
                print(f"{name:>7}  {task:<20} {seconds:8.3f} s", flush=True)
        for name in nets:  # a whole iteration: the G phase plus the D phase
            results[name]["G+D training step"] = results[name]["G step"] + results[name]["D step with R1"]
            print(f"{name:>7}  {'G+D training step':<20} {results[name]['G+D training step']:8.3f} s")
    print(f"allocator: {os.environ.get(BENCH_MARKER, os.environ.get('MEDGAN_ALLOCATOR', 'as started'))}", flush=True)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs (others' work slows everything)")
    if args.json is not None:
        args.json.write_text(json.dumps(results))
    if "nvidia" in results:
        for task, ours in results["medgan"].items():
            ratio = results["nvidia"][task] / ours
            print(f"ratio nvidia/medgan  {task:<20} {ratio:6.2f}x  ({'ours faster' if ratio >= 1 else 'ours slower'})")


if __name__ == "__main__":
    main()
