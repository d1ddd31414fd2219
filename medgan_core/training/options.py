"""One definition of the training options, shared by `medgan train` and `python -m medgan_core.train`.

Defaults are the StyleGAN2 configuration of NVIDIA's StyleGAN3 code base (`train.py --cfg=stylegan2`):

| option | default | meaning |
|---|---|---|
| --map | 8 | mapping network layers |
| --glr, --dlr | 0.002 | Adam learning rates of G and D |
| --beta1 | 0 | Adam beta1 (the paper: 0.9); beta2 is 0.99, eps 1e-8 |
| --mbstd-group | 4 | minibatch-std group size of D's epilogue |
| --cbase, --cmax | 32768, 512 | channel_base and channel_max of G and D |
| fused modconv | inference only | G's fused_modconv_default = 'inference_only' |
| --tick, --snap | 4 kimg, 50 ticks | progress interval; snapshot (and metrics) interval |
| --metrics | fid50k_full | metrics at each snapshot ('none' for none) |
| --gamma | 10 | R1 weight (NVIDIA makes it required; 10 is a documented choice for 256-512 px) |
| ema | batch * 10 / 32 kimg | G_ema half-life, with a ramp-up of 0.05 (none after a resume) |
| --fp32 | off | mixed precision: num_fp16_res 4 and conv_clamp 256 (CUDA only); --fp32: 0 and None |
| loss | | style mixing 0.9, path length weight 2 every 4 G steps, R1 every 16 D steps |
| --aug, --target, --augpipe | ada, 0.6, bgc | ADA; p moves by 1 in 500 kimg (100 after a resume) |
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import click

AUG_MODES = ("ada", "fixed", "noaug")
ALLOCATORS = ("auto", "default", "tuned", "jemalloc", "tcmalloc")


@dataclass
class TrainOptions:
    """The command-line options, exactly as given (written into training_options.json)."""

    outdir: str
    data: str
    gamma: float = 10.0
    gpus: int = 1
    batch: int = 32
    batch_gpu: int | None = None
    kimg: float = 25000
    tick: float = 4
    snap: int = 50
    seed: int = 0
    mirror: bool = False
    aug: str = "ada"
    p: float = 0.2
    target: float = 0.6
    augpipe: str = "bgc"
    resume: str | None = None
    metrics: str = "fid50k_full"
    cbase: int = 32768
    cmax: int = 512
    map: int = 8
    mbstd_group: int = 4
    beta1: float = 0.0
    glr: float = 0.002
    dlr: float = 0.002
    fp32: bool = False
    workers: int = 3
    cond: bool = False
    freezed: int = 0
    max_size: int | None = None
    nobench: bool = False
    dry_run: bool = False
    device: str = "auto"
    allocator: str = "auto"
    desc: str | None = None
    run_dir: str | None = None  # write into exactly this folder instead of outdir/<00000-desc>
    debug_hashes: bool = False  # every rank writes a hash of its weights at the end (multi-process tests)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def build_config(opts: TrainOptions, num_channels: int, resolution: int, label_dim: int) -> dict:
    """The training configuration (NVIDIA's `c`) from the options and the dataset's shape."""
    if opts.batch % opts.gpus != 0:
        raise click.BadParameter(f"--batch {opts.batch} must be a multiple of --gpus {opts.gpus}")
    batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    if opts.batch % (opts.gpus * batch_gpu) != 0:
        raise click.BadParameter("--batch must be a multiple of --gpus times --batch-gpu")
    if batch_gpu < opts.mbstd_group:
        raise click.BadParameter(
            f"--batch-gpu {batch_gpu} must be at least the minibatch-std group "
            f"({opts.mbstd_group}); lower it with --mbstd-group"
        )
    if opts.aug not in AUG_MODES:
        raise click.BadParameter(f"--aug must be one of {AUG_MODES}")
    if opts.cond and label_dim == 0:
        raise click.BadParameter("--cond needs labels in the dataset's dataset.json")
    c_dim = label_dim if opts.cond else 0
    fp16 = not opts.fp32
    return dict(
        G_kwargs=dict(
            z_dim=512,
            w_dim=512,
            c_dim=c_dim,
            img_resolution=resolution,
            img_channels=num_channels,
            mapping_kwargs=dict(num_layers=opts.map),
            channel_base=opts.cbase,
            channel_max=opts.cmax,
            num_fp16_res=4 if fp16 else 0,
            conv_clamp=256 if fp16 else None,
            fused_modconv_default="inference_only",
        ),
        D_kwargs=dict(
            c_dim=c_dim,
            img_resolution=resolution,
            img_channels=num_channels,
            channel_base=opts.cbase,
            channel_max=opts.cmax,
            num_fp16_res=4 if fp16 else 0,
            conv_clamp=256 if fp16 else None,
            block_kwargs=dict(freeze_layers=opts.freezed),
            mapping_kwargs={},
            epilogue_kwargs=dict(mbstd_group_size=opts.mbstd_group),
        ),
        G_opt_kwargs=dict(lr=opts.glr, betas=[opts.beta1, 0.99], eps=1e-8),
        D_opt_kwargs=dict(lr=opts.dlr, betas=[opts.beta1, 0.99], eps=1e-8),
        loss_kwargs=dict(
            r1_gamma=opts.gamma,
            style_mixing_prob=0.9,
            pl_weight=2,
            pl_batch_shrink=2,
            pl_decay=0.01,
            pl_no_weight_grad=True,
            blur_init_sigma=0,
            blur_fade_kimg=0,
        ),
        G_reg_interval=4,
        D_reg_interval=16,
        batch_size=opts.batch,
        batch_gpu=batch_gpu,
        ema_kimg=opts.batch * 10 / 32,
        ema_rampup=0.05 if opts.resume is None else None,
        augment_kwargs=None if opts.aug == "noaug" else dict(preset=opts.augpipe),
        augment_p=opts.p if opts.aug == "fixed" else 0.0,
        ada_target=opts.target if opts.aug == "ada" else None,
        ada_interval=4,
        ada_kimg=500 if opts.resume is None else 100,
        total_kimg=opts.kimg,
        kimg_per_tick=opts.tick,
        snapshot_ticks=opts.snap,
        metrics=[] if opts.metrics.strip().lower() == "none" else [m.strip() for m in opts.metrics.split(",")],
        random_seed=opts.seed,
        num_workers=opts.workers,
        cudnn_benchmark=not opts.nobench,
        training_set_kwargs=dict(
            path=opts.data,
            use_labels=opts.cond,
            max_size=opts.max_size,
            xflip=opts.mirror,
            random_seed=opts.seed,
            resolution=resolution,
        ),
    )


_OPTION_SPECS = [
    # (decls, kwargs)
    (("--outdir",), dict(required=True, metavar="DIR", help="Where to make the run folder <00000-desc>.")),
    (("--data",), dict(required=True, metavar="PATH", help="Training images: folder or zip of PNGs.")),
    (
        ("--gpus",),
        dict(
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Number of processes (GPUs; on CPU, gloo ranks).",
        ),
    ),
    (("--batch",), dict(type=click.IntRange(min=1), default=32, show_default=True, help="Total batch size.")),
    (("--batch-gpu",), dict(type=click.IntRange(min=1), default=None, help="Batch per GPU [default: batch/gpus].")),
    (("--gamma",), dict(type=click.FloatRange(min=0), default=10.0, show_default=True, help="R1 weight gamma.")),
    (
        ("--kimg",),
        dict(
            type=click.FloatRange(min=0),
            default=25000,
            show_default=True,
            help="Training length in thousands of real images shown.",
        ),
    ),
    (
        ("--tick",),
        dict(
            type=click.FloatRange(min=0, min_open=True),
            default=4,
            show_default=True,
            help="Progress interval in kimg.",
        ),
    ),
    (
        ("--snap",),
        dict(type=click.IntRange(min=1), default=50, show_default=True, help="Snapshot and metric interval in ticks."),
    ),
    (("--seed",), dict(type=click.IntRange(min=0), default=0, show_default=True, help="Random seed.")),
    (("--mirror",), dict(is_flag=True, help="Add x-flipped copies of the images (doubles the set).")),
    (("--max-size",), dict(type=click.IntRange(min=1), default=None, help="Use a seeded subset of this many images.")),
    (
        ("--aug",),
        dict(
            type=click.Choice(AUG_MODES),
            default="ada",
            show_default=True,
            help="Augmentation: adaptive p, fixed p, or none.",
        ),
    ),
    (
        ("--p",),
        dict(type=click.FloatRange(0, 1), default=0.2, show_default=True, help="Augment probability for --aug fixed."),
    ),
    (
        ("--target",),
        dict(
            type=click.FloatRange(0, 1),
            default=0.6,
            show_default=True,
            help="ADA target for the mean sign of D's real logits.",
        ),
    ),
    (
        ("--augpipe",),
        dict(
            default="bgc",
            show_default=True,
            help="Augmentation preset: blit, geom, color, filter, noise, cutout, bgc, bgcf, bgcfn, bgcfnc.",
        ),
    ),
    (
        ("--resume",),
        dict(
            default=None,
            metavar="PATH",
            help="Our snapshot (continue the run) or an NVIDIA pickle (transfer learning).",
        ),
    ),
    (
        ("--metrics",),
        dict(default="fid50k_full", show_default=True, help="Comma-separated metrics at each snapshot, or 'none'."),
    ),
    (("--cbase",), dict(type=click.IntRange(min=1), default=32768, show_default=True, help="Channel base.")),
    (("--cmax",), dict(type=click.IntRange(min=1), default=512, show_default=True, help="Maximum channels.")),
    (("--map",), dict(type=click.IntRange(min=1), default=8, show_default=True, help="Mapping network depth.")),
    (
        ("--mbstd-group",),
        dict(type=click.IntRange(min=1), default=4, show_default=True, help="Minibatch-std group size."),
    ),
    (
        ("--beta1",),
        dict(
            type=click.FloatRange(0, 1, max_open=True),
            default=0.0,
            show_default=True,
            help="Adam beta1 of G and D (the paper uses 0.9).",
        ),
    ),
    (("--glr",), dict(type=click.FloatRange(min=0), default=0.002, show_default=True, help="G learning rate.")),
    (("--dlr",), dict(type=click.FloatRange(min=0), default=0.002, show_default=True, help="D learning rate.")),
    (("--fp32",), dict(is_flag=True, help="Disable mixed precision (the paper's setting).")),
    (("--workers",), dict(type=click.IntRange(min=0), default=3, show_default=True, help="DataLoader workers.")),
    (("--cond",), dict(is_flag=True, help="Condition on dataset.json labels.")),
    (
        ("--freezed",),
        dict(type=click.IntRange(min=0), default=0, show_default=True, help="Freeze the first N layers of D."),
    ),
    (("--nobench",), dict(is_flag=True, help="Disable cuDNN benchmarking.")),
    (("--dry-run", "dry_run"), dict(is_flag=True, help="Print the options and exit.")),
    (("--device",), dict(default="auto", show_default=True, help="auto, cpu or cuda.")),
    (
        ("--allocator",),
        dict(
            type=click.Choice(ALLOCATORS),
            default="auto",
            show_default=True,
            help="CPU memory allocator: auto (tuned on CPU), default (glibc as is), tuned "
            "(MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=64 GiB), jemalloc or tcmalloc "
            "(LD_PRELOAD of Debian's library).",
        ),
    ),
    (("--desc",), dict(default=None, help="Text added to the run folder's name.")),
    (
        ("--run-dir", "run_dir"),
        dict(default=None, metavar="DIR", help="Write into exactly this folder (no numbered subfolder)."),
    ),
    (
        ("--debug-hashes", "debug_hashes"),
        dict(is_flag=True, hidden=True, help="Each rank writes a hash of its weights at the end."),
    ),
]


def training_options(fn):
    """Decorate a click command with every training option; the command receives them as keyword arguments."""
    for decls, kwargs in reversed(_OPTION_SPECS):
        fn = click.option(*decls, **kwargs)(fn)
    return fn


def options_from_kwargs(kwargs: dict) -> TrainOptions:
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in kwargs.items() if k in fields})


def make_run_dir(opts: TrainOptions) -> str:
    """outdir/<NNNNN>-<desc>: the next free number, NVIDIA-style (or exactly --run-dir)."""
    if opts.run_dir:
        return opts.run_dir
    os.makedirs(opts.outdir, exist_ok=True)
    ids = [
        int(name.split("-")[0])
        for name in os.listdir(opts.outdir)
        if name.split("-")[0].isdigit() and os.path.isdir(os.path.join(opts.outdir, name))
    ]
    desc = (
        opts.desc
        or f"{os.path.splitext(os.path.basename(opts.data.rstrip('/')))[0]}-gpus{opts.gpus}-"
        f"batch{opts.batch}-gamma{opts.gamma:g}"
    )
    return os.path.join(opts.outdir, f"{max(ids, default=-1) + 1:05d}-{desc}")
