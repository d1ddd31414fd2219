"""CPU timings of the StyleGAN2 networks: G inference and one G+D training step with R1.

Configuration (issue 2): batch 8, 256x256, one image channel, FFHQ-like widths (channel_base 16384, channel_max
512, z = w = 512, 8 mapping layers). Prints medians over a few repeats.

The target is "at least as fast as NVIDIA's own networks running their reference ops on the same CPU". NVIDIA's
code is not part of this repository; pass `--nvidia-src DIR` (a checkout of NVlabs/stylegan3, or any folder with
its `training/networks_stylegan2.py`, `torch_utils/` and `dnnlib/`) to time NVIDIA's Generator/Discriminator in
the same process, with the same weights, and print the ratios (NVIDIA time / our time: above 1 means ours is
faster).

    python benchmarks/bench_networks.py [--quick] [--repeats 3] [--nvidia-src ../nvidia_src]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from medgan_core.networks import Discriminator, Generator


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


def g_inference(G, z, c):
    def run():
        with torch.no_grad():
            G(z, c, noise_mode="const")

    return run


def training_step(G, D, z, c, real, r1_gamma: float = 1.0):
    """Non-saturating G loss, then D loss on fakes and reals with the R1 penalty (backward through both)."""

    def run():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        fake = G(z, c)
        F.softplus(-D(fake, c)).mean().backward()
        real_img = real.detach().requires_grad_(True)
        real_logits = D(real_img, c)
        (r1_grads,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
        r1_penalty = r1_grads.square().sum(dim=[1, 2, 3])
        fake_logits = D(fake.detach(), c)
        loss_d = F.softplus(fake_logits) + F.softplus(-real_logits) + r1_penalty.unsqueeze(1) * (r1_gamma / 2)
        loss_d.mean().backward()

    return run


def load_nvidia(nvidia_src: Path):
    sys.path.insert(0, str(nvidia_src))
    from training import networks_stylegan2  # NVIDIA's module, from the given folder only

    return networks_stylegan2


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
    args = parser.parse_args()
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
    inference = {name: g_inference(G, z, c) for name, (G, D) in nets.items()}
    for name, seconds in interleaved_medians(inference, repeats, max(warmup, 1)).items():
        results[name]["G inference"] = seconds
        print(f"{name:>7}  G inference          {seconds:8.3f} s", flush=True)
    if not args.skip_train:
        steps = {name: training_step(G, D, z, c, real) for name, (G, D) in nets.items()}
        for name, seconds in interleaved_medians(steps, repeats, warmup).items():
            results[name]["G+D step with R1"] = seconds
            print(f"{name:>7}  G+D step with R1     {seconds:8.3f} s", flush=True)
    if "nvidia" in results:
        for task, ours in results["medgan"].items():
            ratio = results["nvidia"][task] / ours
            print(f"ratio nvidia/medgan  {task:<20} {ratio:6.2f}x  ({'ours faster' if ratio >= 1 else 'ours slower'})")


if __name__ == "__main__":
    main()
