"""Fused Triton ops vs the reference PyTorch ops at the shapes of the 256x256 and 512x512 training configs.

Each row times one op (forward, or forward + backward) at the largest layers of the paper's configurations
(StyleGAN2, channel_base 16384 at 256x256 and 32768 at 512x512, channel_max 512, 8 images per GPU, float32), and
a full G + D training step at 512x512 (G main loss, D main loss, R1 on the reals; optionally path length),
with the reference ops and with the fused ones in the same process. Prints milliseconds (median of CUDA-event
timings after warm-up) and the ratio reference / fused. On a machine without CUDA it times the reference alone
(at batch 1 unless --batch is given).

    python benchmarks/bench_ops.py [--batch 8] [--reps 50] [--no-train-step] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

from medgan_core.ops import bias_act, dispatch, upfirdn2d

CONFIGS = {256: 16384, 512: 32768}  # resolution -> channel_base (channel_max 512)


def channels(channel_base: int, res: int) -> int:
    return min(channel_base // res, 512)


def timed(fn, reps: int, on_gpu: bool) -> float:
    """Median milliseconds of `fn()` after warm-up."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        if on_gpu:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def op_cases(batch: int, device: str):
    """(name, make_inputs, run(impl, inputs, backward)) for the largest bias_act and resampling layers."""
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    cases = []
    for res, cbase in CONFIGS.items():
        c_top, c_half = channels(cbase, res), channels(cbase, res // 2)
        gen = torch.Generator(device=device).manual_seed(res)

        def rand(*shape, gen=gen):
            return torch.randn(shape, device=device, generator=gen)

        # SynthesisLayer at full resolution: bias + lrelu + gain sqrt(2) on [N, C, res, res].
        cases.append((f"bias_act lrelu {res}: [{batch},{c_top},{res},{res}]",
                      lambda c=c_top, r=res: (rand(batch, c, r, r), rand(c)),
                      lambda impl, xb: bias_act.bias_act(xb[0], xb[1], act="lrelu", impl=impl)))  # fmt: skip
        # The same with conv_clamp 256 (NVIDIA's default when mixed precision is on).
        cases.append((f"bias_act lrelu clamp {res}: [{batch},{c_top},{res},{res}]",
                      lambda c=c_top, r=res: (rand(batch, c, r, r), rand(c)),
                      lambda impl, xb: bias_act.bias_act(xb[0], xb[1], act="lrelu", clamp=256,
                                                         impl=impl)))  # fmt: skip
        # Generator up-sampling conv: the 4x4 low-pass after the transposed conv (padding 1, gain 4), output res^2.
        cases.append((f"upfirdn2d filter after up-conv {res}: [{batch},{c_top},{res + 1},{res + 1}]",
                      lambda c=c_top, r=res: (rand(batch, c, r + 1, r + 1),),
                      lambda impl, xs: upfirdn2d.upfirdn2d(xs[0], f, padding=1, gain=4, impl=impl)))  # fmt: skip
        # Generator skip path: upsample2d of the RGB image (3 channels) and of a feature map.
        cases.append((f"upsample2d {res // 2}->{res}: [{batch},{c_half},{res // 2},{res // 2}]",
                      lambda c=c_half, r=res: (rand(batch, c, r // 2, r // 2),),
                      lambda impl, xs: upfirdn2d.upsample2d(xs[0], f, impl=impl)))  # fmt: skip
        # Discriminator down-sampling conv: the 4x4 low-pass before the stride-2 conv (padding 2), at res^2.
        cases.append((f"upfirdn2d filter before down-conv {res}: [{batch},{c_top},{res},{res}]",
                      lambda c=c_top, r=res: (rand(batch, c, r, r),),
                      lambda impl, xs: upfirdn2d.upfirdn2d(xs[0], f, padding=2, impl=impl)))  # fmt: skip
        # Discriminator skip branch: downsample2d at res^2.
        cases.append((f"downsample2d {res}->{res // 2}: [{batch},{c_top},{res},{res}]",
                      lambda c=c_top, r=res: (rand(batch, c, r, r),),
                      lambda impl, xs: upfirdn2d.downsample2d(xs[0], f, impl=impl)))  # fmt: skip
    return cases


def bench_op(make, run, impl: str, backward: bool, reps: int, on_gpu: bool) -> float:
    inputs = [t.requires_grad_(backward) for t in make()]

    def step():
        out = run(impl, inputs)
        if backward:
            out.backward(torch.ones_like(out))

    return timed(step, reps, on_gpu)


def build_networks(res: int, device: str):
    from medgan_core.networks import Discriminator, Generator

    cbase = CONFIGS[res]
    common = dict(c_dim=0, img_resolution=res, img_channels=1, channel_base=cbase, channel_max=512, num_fp16_res=0,
                  conv_clamp=None)  # fmt: skip
    torch.manual_seed(0)
    G = Generator(z_dim=512, w_dim=512, mapping_kwargs=dict(num_layers=8), fused_modconv_default="inference_only",
                  **common).to(device).train()  # fmt: skip
    D = Discriminator(architecture="resnet", epilogue_kwargs=dict(mbstd_group_size=4), **common).to(device).train()
    return G, D


def train_step(G, D, opt_G, opt_D, z, c, real, r1_gamma: float, pl: bool):
    """One simple StyleGAN2 step: G main (+ path length), D main + R1 on the reals."""
    opt_G.zero_grad(set_to_none=True)
    loss_G = F.softplus(-D(G(z, c), c)).mean()
    if pl:
        half = z.shape[0] // 2
        ws = G.mapping(z[:half], c[:half])
        img = G.synthesis(ws)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (pl_grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        loss_G = loss_G + 2.0 * pl_grads.square().sum(2).mean(1).sqrt().square().mean()
    loss_G.backward()
    opt_G.step()

    opt_D.zero_grad(set_to_none=True)
    fake = G(z, c).detach()
    real = real.detach().requires_grad_(True)
    logits_real = D(real, c)
    (r1_grads,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
    loss_D = F.softplus(D(fake, c)).mean() + F.softplus(-logits_real).mean()
    loss_D = loss_D + r1_gamma / 2 * r1_grads.square().sum([1, 2, 3]).mean()
    loss_D.backward()
    opt_D.step()


def bench_train_step(res: int, batch: int, impl: str, reps: int, on_gpu: bool, device: str, pl: bool) -> float:
    G, D = build_networks(res, device)
    opt_G = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.9, 0.99))
    opt_D = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.9, 0.99))
    gen = torch.Generator(device=device).manual_seed(1)
    z = torch.randn(batch, 512, device=device, generator=gen)
    c = torch.zeros(batch, 0, device=device)
    real = torch.randn(batch, 1, res, res, device=device, generator=gen)
    with dispatch.prefer(impl):
        ms = timed(functools.partial(train_step, G, D, opt_G, opt_D, z, c, real, 0.5, pl), reps, on_gpu)
    del G, D, opt_G, opt_D
    if on_gpu:
        torch.cuda.empty_cache()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="images per step (default 8 on GPU, 1 on CPU)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 50 on GPU, 3 on CPU)")
    parser.add_argument("--train-reps", type=int, default=10)
    parser.add_argument("--no-train-step", action="store_true", help="skip the G + D training step")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()

    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    batch = args.batch or (8 if on_gpu else 1)
    reps = args.reps or (50 if on_gpu else 3)
    impls = ["ref", "triton"] if on_gpu else ["ref"]
    if on_gpu:
        # As the trainer (medgan_core/training/loop.py) and NVIDIA's: cuDNN autotuning on, no TF32.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cudnn.benchmark on, TF32 off",
              flush=True)  # fmt: skip
    else:
        print("no CUDA device: timing the reference ops alone on CPU", flush=True)

    rows = []
    for name, make, run in op_cases(batch, device):
        for backward in (False, True):
            times = {impl: bench_op(make, run, impl, backward, reps, on_gpu) for impl in impls}
            rows.append(dict(name=name + (" fwd+bwd" if backward else " fwd"), **times))
            print(_format_row(rows[-1]), flush=True)

    if not args.no_train_step and on_gpu:
        for pl in (False, True):
            times = {impl: bench_train_step(512, batch, impl, args.train_reps, on_gpu, device, pl) for impl in impls}
            label = "G+D step 512 (G main, D main, R1" + (", path length)" if pl else ")") + f" batch {batch}"
            rows.append(dict(name=label, **times))
            print(_format_row(rows[-1]), flush=True)

    print("\n" + "\n".join(_format_row(row) for row in rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name() if on_gpu else "cpu", batch=batch, rows=rows), f,
                      indent=1)  # fmt: skip


def _format_row(row: dict) -> str:
    text = f"{row['name']:<72} ref {row['ref']:9.3f} ms"
    if "triton" in row:
        text += f"   triton {row['triton']:9.3f} ms   ratio {row['ref'] / row['triton']:5.2f}x"
    return text


if __name__ == "__main__":
    main()
