"""The CPU training step at the book's record settings, in one process: sec/kimg, phases, op shares, the floor.

The step is the training loop's own (`loop._train_iteration` with the loop's networks, augment pipe, loss and
Adam phases), at the records' options: fp32, 2 mapping layers, channel base 1024 (at most 64 channels), batch 16,
`--augpipe bg` at a fixed p (0.2), R1 every 16 D steps (gamma 0.0128 at 32x32, 0.05 at 64x64), path length every
4 G steps, Adam beta1 0. One "cycle" is 16 iterations (every phase at its lazy interval); the time of a cycle
over 16 * batch images gives sec/kimg.

Printed, per resolution:
- sec/kimg of ours (and of NVIDIA's networks, loss and augment pipe in the same loop with `--nvidia-src`, their
  CPU fallbacks: reference bias_act / upfirdn2d, plain conv2d and grid_sample), medians over interleaved cycles;
- the time per phase (Gmain, Greg, Dmain, Dreg: forward + backward) and of the Adam steps;
- the share of each kind of op (a dispatch-mode timer around every aten op of one cycle): convolution (the
  layers' dense convolutions, forward, backward and double backward), resample/FIR (the depthwise filters of
  upfirdn2d), augment (grid sampling and its wavelet filters), optimiser (Adam), elementwise and other ops,
  and Python overhead (the cycle's time minus its ops' time);
- the floor: the cycle's dense convolutions alone, replayed op by op at the same shapes, strides and arguments
  on fresh tensors; ours / floor is the target ratio (<= 1.5).

    python benchmarks/bench_train_step.py --threads 1                      # 32 and 64, ours only
    python benchmarks/bench_train_step.py --threads 1 --nvidia-src ../stylegan3 --cycles 3

Threads: `--threads N` sets torch's intra-op threads (the two-rank figures come from bench_train.py --gpus 2).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 16
CYCLE = 16  # iterations: G reg every 4, D reg every 16
GAMMA = {32: 0.0128, 64: 0.05}


# ---- building both steps --------------------------------------------------------------------------------------
class _Labels:
    """The part of a dataset `_train_iteration` reads: labels (none)."""

    def __len__(self):
        return 64

    def get_label(self, idx):
        return np.zeros([0], dtype=np.float32)


def _reals(resolution: int, seed: int = 0):
    """Endless batches of uint8 discs [BATCH, 1, res, res] with empty labels (the bench_train.py data)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:resolution, :resolution]
    images = []
    for _ in range(64):
        cx, cy = rng.uniform(0.3, 0.7, 2) * resolution
        radius = rng.uniform(0.12, 0.25) * resolution
        images.append(np.where((xx - cx) ** 2 + (yy - cy) ** 2 < radius**2, 220, 30).astype(np.uint8))
    images = torch.from_numpy(np.stack(images)[:, None])
    while True:
        idx = torch.from_numpy(rng.randint(64, size=BATCH))
        yield images[idx], torch.zeros([BATCH, 0])


def _options(resolution: int) -> dict:
    from medgan_core.training.options import TrainOptions, build_config

    opts = TrainOptions(
        outdir="/tmp", data="/tmp/none", fp32=True, map=2, cbase=1024, cmax=64, batch=16, gamma=GAMMA[resolution],
        beta1=0.0, aug="fixed", p=0.2, augpipe="bg", mirror=True, device="cpu", workers=0, metrics="none",
    )  # fmt: skip
    return build_config(opts, num_channels=1, resolution=resolution, label_dim=0)


def build_ours(resolution: int, seed: int = 0):
    """(phases, loss, modules) as `training_loop` builds them."""
    from medgan_core.loss import StyleGAN2Loss
    from medgan_core.training import loop
    from medgan_core.training.stats import StatsCollector

    kw = _options(resolution)
    torch.manual_seed(seed)
    G, D, _G_ema = loop.build_networks(kw["G_kwargs"], kw["D_kwargs"], torch.device("cpu"))
    pipe, _ = loop.build_augment(kw["augment_kwargs"], kw["augment_p"], None, 4, 100, BATCH, torch.device("cpu"))
    loss = StyleGAN2Loss("cpu", G, D, augment_pipe=pipe, stats=StatsCollector(torch.device("cpu")),
                         **loop._constructor_kwargs(kw["loss_kwargs"]))  # fmt: skip
    phases, _ = loop.build_phases(G, D, kw["G_opt_kwargs"], kw["D_opt_kwargs"], 4, 16)
    return phases, loss, (G, D, pipe)


def build_nvidia(resolution: int, nvidia_src: Path, seed: int = 0):
    """NVIDIA's networks, augment pipe and StyleGAN2Loss (their CPU fallbacks) with the same options."""
    from medgan_core.checkpoint.nvidia_code import import_nvidia
    from medgan_core.training import loop

    code = import_nvidia(nvidia_src)
    import importlib

    nv_loss = importlib.import_module("training.loss")
    gradfix = importlib.import_module("torch_utils.ops.conv2d_gradfix")
    grid_gradfix = importlib.import_module("torch_utils.ops.grid_sample_gradfix")
    gradfix.enabled = True  # as their training_loop sets them (no effect on CPU tensors)
    grid_gradfix.enabled = True
    kw = _options(resolution)
    torch.manual_seed(seed)
    G = code.networks.Generator(**loop._constructor_kwargs(kw["G_kwargs"])).train().requires_grad_(False)
    D = code.networks.Discriminator(**loop._constructor_kwargs(kw["D_kwargs"])).train().requires_grad_(False)
    pipe = code.augment.AugmentPipe(**loop._constructor_kwargs(kw["augment_kwargs"])).train().requires_grad_(False)
    pipe.p.copy_(torch.as_tensor(kw["augment_p"]))
    loss = nv_loss.StyleGAN2Loss(torch.device("cpu"), G=G, D=D, augment_pipe=pipe,
                                 **loop._constructor_kwargs(kw["loss_kwargs"]))  # fmt: skip
    phases, _ = loop.build_phases(G, D, kw["G_opt_kwargs"], kw["D_opt_kwargs"], 4, 16)
    return phases, loss, (G, D, pipe)


class Step:
    """One network set's training iterations, with per-phase timers."""

    def __init__(self, name, phases, loss, modules, resolution, variant=None):
        from medgan_core.training import loop

        self.name, self.phases, self.loss, self.modules = name, phases, loss, modules
        self.variant = variant
        self._iteration = loop._train_iteration
        self.data = _reals(resolution)
        self.labels = _Labels()
        self.batch_idx = 0
        self.phase_time = defaultdict(float)
        accumulate = loss.accumulate_gradients

        def timed_accumulate(phase, **kwargs):
            start = CLOCK()
            accumulate(phase=phase, **kwargs)
            self.phase_time[phase] += CLOCK() - start

        loss.accumulate_gradients = timed_accumulate
        for opt in {id(p.opt): p.opt for p in phases}.values():
            step = opt.step

            def timed_step(*args, _step=step, **kwargs):
                start = CLOCK()
                with _Region("optimiser"):
                    out = _step(*args, **kwargs)
                self.phase_time["Adam"] += CLOCK() - start
                return out

            opt.step = timed_step

    def cycle(self) -> float:
        """CYCLE iterations; returns their wall time in seconds."""
        with switches(self.variant):
            start = CLOCK()
            for _ in range(CYCLE):
                self._iteration(self.phases, self.loss, self.data, self.labels, 512, BATCH, BATCH,
                                torch.device("cpu"), self.batch_idx, self.batch_idx * BATCH, 1)  # fmt: skip
                self.batch_idx += 1
            return CLOCK() - start


# The speed-ups of issue 27, each a module-level switch: `--variants` times the step with some of them off.
SWITCHES = {  # name: (module, attribute, value when on, value when off)
    "channels_last": ("medgan_core.networks.layers", "CPU_CHANNELS_LAST", True, False),
    "fold": ("medgan_core.ops.upfirdn2d", "FOLD_CHANNELS", 4, 0),
    "epilogue": ("medgan_core.networks.layers", "CPU_FOLD_EPILOGUE", True, False),
    "nograd_fakes": ("medgan_core.loss", "G_FAKES_WITHOUT_AUTOGRAD", True, False),
}


@contextlib.contextmanager
def switches(variant: str | None):
    """Inside: the switches named in `variant` ('all', 'none', or '-name1,-name2' = all but those) set."""
    import importlib

    if variant is None:
        yield
        return
    off = set(SWITCHES) if variant == "none" else {name[1:] for name in variant.split(",") if name.startswith("-")}
    saved = {}
    for name, (module, attr, on, off_value) in SWITCHES.items():
        mod = importlib.import_module(module)
        saved[name] = getattr(mod, attr)
        setattr(mod, attr, off_value if name in off else on)
    try:
        yield
    finally:
        for name, (module, attr, *_values) in SWITCHES.items():
            setattr(importlib.import_module(module), attr, saved[name])


# ---- op classification ------------------------------------------------------------------------------------------
_REGION: list[str] = []
CLOCK = time.perf_counter  # --clock cpu: time.process_time (one thread on a shared machine)


class _Region(contextlib.ContextDecorator):
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        _REGION.append(self.name)

    def __exit__(self, *exc):
        _REGION.pop()


def _conv_kind(func, args) -> str | None:
    """'dense', 'fir' or 'augment' for a convolution op, None for other ops."""
    name = func.__name__.split(".")[0]
    if name not in ("convolution", "convolution_backward"):
        return None
    weight = args[2] if name == "convolution_backward" else args[1]
    groups = args[9 if name == "convolution_backward" else 8]
    depthwise = weight.shape[1] == 1 and groups == weight.shape[0] and weight.shape[2:].numel() > 1
    if depthwise:  # a FIR filter (upfirdn2d), however its batch and channels are laid out
        return "augment" if max(weight.shape[2:]) >= 12 else "fir"
    return "dense"


def _category(func, args) -> str:
    if _REGION:
        return _REGION[-1]
    kind = _conv_kind(func, args)
    if kind == "dense":
        return "convolution"
    if kind == "fir":
        return "resample/FIR"
    if kind == "augment":
        return "augment"
    name = func.__name__
    if "grid_sampler" in name or "affine_grid" in name or name.startswith("reflection_pad"):
        return "augment"
    if name.startswith(("leaky_relu", "add", "mul", "sub", "div", "clamp", "where", "threshold", "lerp", "neg",
                        "rsqrt", "sqrt", "square", "pow", "softplus", "sign", "addcmul", "exp", "abs", "copy_",
                        "fill_", "zero_", "nan_to_num")):  # fmt: skip
        return "elementwise"
    if name.startswith(("mm", "addmm", "bmm", "matmul")):
        return "dense layers (matmul)"
    return "other ops"


class OpTimer(TorchDispatchMode):
    """Times every aten op (CPU ops are synchronous) by category; records the dense convolutions' calls."""

    def __init__(self):
        super().__init__()
        self.time = defaultdict(float)
        self.count = defaultdict(int)
        self.convs: list[tuple] = []
        self.per_op = defaultdict(float)
        self.per_op_count = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        category = _category(func, args)
        start = CLOCK()
        out = func(*args, **kwargs)
        elapsed = CLOCK() - start
        self.time[category] += elapsed
        self.count[category] += 1
        self.per_op[func.__name__] += elapsed
        self.per_op_count[func.__name__] += 1
        if category == "convolution":
            self.convs.append((func, _describe(args), _describe(kwargs)))
        return out


def _describe(obj):
    """Tensors -> (shape, stride, dtype) placeholders; everything else as is (for replaying a call)."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", tuple(obj.shape), tuple(obj.stride()), obj.dtype)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_describe(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _describe(v) for k, v in obj.items()}
    return obj


def _materialise(obj):
    if isinstance(obj, tuple) and len(obj) == 4 and obj[0] == "tensor":
        _, shape, stride, dtype = obj
        return torch.empty_strided(shape, stride, dtype=dtype).normal_()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    return obj


def floor_seconds(convs: list[tuple]) -> float:
    """The recorded dense convolution calls replayed once on fresh tensors: the sum of their times."""
    calls = [(func, _materialise(args), _materialise(kwargs)) for func, args, kwargs in convs]
    with torch.no_grad():
        start = CLOCK()
        for func, args, kwargs in calls:
            func(*args, **kwargs)
        return CLOCK() - start


# ---- main ----------------------------------------------------------------------------------------------------------
def sec_per_kimg(seconds_per_cycle: float) -> float:
    return seconds_per_cycle / (CYCLE * BATCH / 1000)


def run_resolution(resolution: int, args) -> dict:
    steps = [Step("medgan", *build_ours(resolution), resolution)]
    for variant in args.variants.split(";") if args.variants else []:
        steps.append(Step(f"medgan[{variant}]", *build_ours(resolution), resolution, variant=variant))
    if args.nvidia_src is not None:
        steps.append(Step("nvidia", *build_nvidia(resolution, args.nvidia_src), resolution))
    timers, timed_cycle = {}, {}
    for step in steps:  # warm-up cycle, then one cycle under the op timer (records the convolutions)
        step.cycle()
        timers[step.name] = timer = OpTimer()
        start = CLOCK()
        with timer:
            step.cycle()
        timed_cycle[step.name] = CLOCK() - start
        step.phase_time.clear()
    with_floor = [s.name for s in steps if s.name.startswith("medgan") or args.nvidia_floor]
    times = {step.name: [] for step in steps}
    floors = {name: [] for name in with_floor}
    for _ in range(args.cycles):  # interleaved: load changes hit every setting alike
        for step in steps:
            times[step.name].append(step.cycle())
            if step.name in floors:
                with switches(step.variant):
                    floors[step.name].append(floor_seconds(timers[step.name].convs))
    result = {}
    for step in steps:
        cycle = float(np.median(times[step.name]))
        phases = {k: v / args.cycles for k, v in step.phase_time.items()}
        timer = timers[step.name]
        shares = dict(timer.time)
        shares["Python, autograd engine, dispatch"] = max(timed_cycle[step.name] - sum(timer.time.values()), 0.0)
        floor = float(np.median(floors[step.name])) if step.name in floors else float("nan")
        result[step.name] = dict(cycle=cycle, sec_per_kimg=sec_per_kimg(cycle), phases=phases, shares=shares,
                                 floor=floor, times=times[step.name])  # fmt: skip
        print(f"{resolution}x{resolution} {step.name}: {sec_per_kimg(cycle):7.2f} sec/kimg  (cycle of {CYCLE} "
              f"iterations {cycle:.3f} s, cycles {', '.join(f'{t:.3f}' for t in times[step.name])})")  # fmt: skip
        print("  phases (s per cycle): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(phases.items())))
        print(f"  op shares (of a cycle under the op timer, {timed_cycle[step.name]:.3f} s): " + ", ".join(
            f"{k} {100 * v / timed_cycle[step.name]:.1f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
        ))  # fmt: skip
        if args.top:
            top = sorted(timer.per_op.items(), key=lambda kv: -kv[1])[: args.top]
            print(f"  {sum(timer.count.values())} ops per cycle; top: " + ", ".join(
                f"{k} {1000 * v:.0f} ms/{timer.per_op_count[k]}" for k, v in top))  # fmt: skip
        if floor == floor:
            print(
                f"  floor (the {len(timer.convs)} dense convolution calls alone): {floor:.3f} s "
                f"({', '.join(f'{t:.3f}' for t in floors[step.name])}); {step.name} / floor "
                f"{cycle / floor:.2f}x (target <= 1.5)"
            )
    for name in result:
        if name.startswith("medgan["):
            ratio = result[name]["cycle"] / result["medgan"]["cycle"]
            print(f"{resolution}x{resolution} {name} / medgan: {ratio:.2f}x")
    if "nvidia" in result:
        ratio = result["nvidia"]["cycle"] / result["medgan"]["cycle"]
        print(f"{resolution}x{resolution} nvidia / medgan: {ratio:.2f}x (target >= 2)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", default="32,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cycles", type=int, default=3, help="timed cycles of 16 iterations (after one warm-up)")
    parser.add_argument("--nvidia-src", type=Path, default=None, help="a checkout of NVlabs/stylegan3")
    parser.add_argument(
        "--variants",
        default="",
        help="';'-separated: 'none' (every issue-27 switch off), "
        "'-name,...' (all but those); each timed beside the shipped step",
    )
    parser.add_argument("--top", type=int, default=0, help="print the N most expensive aten ops")
    parser.add_argument("--nvidia-floor", action="store_true", help="also replay NVIDIA's convolutions")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: this process's CPU time (one thread beside other work)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    print(f"bench_train_step: torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, "
          f"{args.cycles} cycles of {CYCLE} iterations per setting, {args.clock} clock")  # fmt: skip
    for resolution in [int(r) for r in args.res.split(",")]:
        run_resolution(resolution, args)


if __name__ == "__main__":
    main()
