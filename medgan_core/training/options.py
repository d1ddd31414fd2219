"""The training options, written once: each field of `TrainOptions` carries its default and its help, from which
the command line of `medgan train` / `python -m medgan_core.train` is built, and `training_kwargs` turns them
into the keyword arguments of `training_loop` in the layout of NVIDIA's `training_options.json`.

Base configurations (`--cfg`; an option given on the command line wins over its preset):

| --cfg | batch (batch per GPU) | mbstd | cbase | lr (G, D) | gamma | ema kimg (ramp-up) | map |
|---|---|---|---|---|---|---|---|
| stylegan2 (default) | 32 (batch / gpus) | 4 | 32768 | 0.002 | 10 | batch * 10 / 32 (0.05) | 8 |
| paper256 | 64 (8) | 8 | 16384 | 0.0025 | 1 | 20 (none) | 8 |
| paper512 | 64 (8) | 8 | 32768 | 0.0025 | 0.5 | 20 (none) | 8 |
| paper1024 | 32 (4) | 4 | 32768 | 0.002 | 2 | 10 (none) | 8 |
| auto | from gpus and resolution | | | | 0.0002 * res^2 / batch | batch * 10 / 32 (0.05) | 2 |

`stylegan2` is NVIDIA's StyleGAN3 code base's `train.py --cfg=stylegan2` (the paper's code); `paper256`,
`paper512`, `paper1024` and `auto` are the presets of NVlabs/stylegan2-ada-pytorch's `train.py`, whose batch per
GPU is the preset batch over its 8 reference GPUs unless --batch or --batch-gpu is given. Every preset: Adam
betas (--beta1, 0.99), eps 1e-8; channel_max 512; style mixing 0.9; path length weight 2 every 4 G steps; R1
every 16 D steps; mixed precision in the 4 highest resolutions (conv_clamp 256) unless --fp32; G's fused
modconv for inference only; ADA (--aug, --target, --augpipe), p moving by 1 in 500 kimg (100 after a resume,
which also drops the EMA ramp-up; --ada-kimg sets it).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import click

from medgan_core.augment import augpipe_specs
from medgan_core.training import distributed as distrib
from medgan_core.training.dataset import ImageFolderDataset

AUG_MODES = ("ada", "fixed", "noaug")
ALLOCATORS = ("auto", "default", "tuned", "jemalloc", "tcmalloc")
# stylegan2-ada-pytorch's cfg_specs (ref_gpus None: batch per GPU = batch / gpus; ema None: batch * 10 / 32)
CFG_SPECS = {
    "stylegan2": dict(ref_gpus=None, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=None, ramp=0.05, map=8),
    "paper256": dict(ref_gpus=8, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8),
    "paper512": dict(ref_gpus=8, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8),
    "paper1024": dict(ref_gpus=8, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None, map=8),
    "auto": None,  # from the GPU count and the resolution: `cfg_spec`
}
# NVIDIA's class names (what NVIDIA's tools construct from training_options.json); medgan maps them to its own
NVIDIA_CLASSES = dict(
    G="training.networks_stylegan2.Generator",
    D="training.networks_stylegan2.Discriminator",
    opt="torch.optim.Adam",
    loss="training.loss.StyleGAN2Loss",
    augment="training.augment.AugmentPipe",
    dataset="training.dataset.ImageFolderDataset",
)


def _option(default, help: str, *decls: str, **click_kwargs):
    """A TrainOptions field: its default, its help, and how the command line spells it."""
    return field(default=default, metadata=dict(help=help, decls=decls, click=click_kwargs))


def _bool(help: str):
    """A boolean option that stands bare (--mirror) or takes NVIDIA's value (--mirror=1, --mirror=false)."""
    return _option(False, help, type=click.BOOL, is_flag=False, flag_value=True, metavar="BOOL")


_VARIES = "[default: from --cfg]"


@dataclass
class TrainOptions:
    """The command-line options exactly as given; None where the value comes from the --cfg preset."""

    outdir: str = _option(
        dataclasses.MISSING, "Where to make the run folder <00000-desc>.", required=True, metavar="DIR"
    )
    data: str = _option(
        dataclasses.MISSING, "Training images: folder or zip of PNGs.", required=True, metavar="[ZIP|DIR]"
    )
    cfg: str = _option("stylegan2", "Base configuration (hyperparameter preset).", type=click.Choice(list(CFG_SPECS)))
    gpus: int | None = _option(
        None,
        "Number of processes (GPUs; on CPU, gloo ranks sharing the cores out). Default: 1; on CPU one process with "
        "a thread per core, measured faster than one rank per core (the log says which setting runs).",
        type=click.IntRange(min=1),
    )
    batch: int | None = _option(None, f"Total batch size {_VARIES}.", type=click.IntRange(min=1))
    batch_gpu: int | None = _option(None, f"Batch per GPU {_VARIES}.", type=click.IntRange(min=1))
    gamma: float | None = _option(None, f"R1 weight gamma {_VARIES}.", type=click.FloatRange(min=0))
    kimg: float = _option(25000, "Training length in thousands of real images shown.", type=click.FloatRange(min=0))
    tick: float = _option(4, "Progress interval in kimg.", type=click.FloatRange(min=0, min_open=True))
    snap: int = _option(50, "Snapshot, image grid and metric interval in ticks.", type=click.IntRange(min=1))
    seed: int = _option(0, "Random seed.", type=click.IntRange(min=0))
    mirror: bool = _bool("Add x-flipped copies of the images (doubles the set).")
    aug: str = _option("ada", "Augmentation: adaptive p, fixed p, or none.", type=click.Choice(AUG_MODES))
    p: float = _option(0.2, "Augment probability for --aug fixed.", type=click.FloatRange(0, 1))
    target: float = _option(0.6, "ADA target for the mean sign of D's real logits.", type=click.FloatRange(0, 1))
    augpipe: str = _option("bgc", "Augmentation preset.", type=click.Choice(list(augpipe_specs)))
    ada_kimg: float | None = _option(
        None,
        "ADA speed: kimg for p to move by 1 (default 500, 100 after a resume; a short run on a small set needs "
        "less, or p cannot catch up with D).",
        type=click.FloatRange(min=0, min_open=True),
    )
    resume: str | None = _option(
        None,
        "Our snapshot (continue its run), a network pickle or checkpoint (transfer learning), or auto "
        "(= --auto-resume).",
        metavar="PATH",
    )
    metrics: str = _option("fid50k_full", "Comma-separated metrics at each snapshot, or 'none'.")
    cbase: int | None = _option(None, f"Channel base (capacity) {_VARIES}.", type=click.IntRange(min=1))
    cmax: int = _option(512, "Maximum channels.", type=click.IntRange(min=1))
    map: int | None = _option(
        None, f"Mapping network depth {_VARIES}.", "--map-depth", "--map", type=click.IntRange(min=1)
    )
    mbstd_group: int | None = _option(None, f"Minibatch-std group size {_VARIES}.", type=click.IntRange(min=1))
    beta1: float = _option(
        0.0, "Adam beta1 of G and D (the paper uses 0.9).", type=click.FloatRange(0, 1, max_open=True)
    )
    glr: float | None = _option(None, f"G learning rate {_VARIES}.", type=click.FloatRange(min=0))
    dlr: float | None = _option(None, f"D learning rate {_VARIES}.", type=click.FloatRange(min=0))
    fp32: bool = _bool("Disable mixed precision (the paper's setting).")
    workers: int = _option(3, "DataLoader worker processes.", type=click.IntRange(min=0))
    cond: bool = _bool("Condition on dataset.json labels.")
    freezed: int = _option(0, "Freeze the first N layers of D.", type=click.IntRange(min=0))
    max_size: int | None = _option(None, "Use a seeded subset of this many images.", type=click.IntRange(min=1))
    nobench: bool = _bool("Disable cuDNN benchmarking.")
    dry_run: bool = _option(False, "Print the training options and exit.", "-n", "--dry-run", is_flag=True)
    device: str = _option("auto", "auto, cpu or cuda.")
    allocator: str = _option(
        "auto",
        "CPU memory allocator: auto (tuned on CPU), default (glibc as is), tuned (MALLOC_MMAP_MAX_=0, "
        "MALLOC_TRIM_THRESHOLD_=64 GiB), jemalloc or tcmalloc (LD_PRELOAD of Debian's library).",
        type=click.Choice(ALLOCATORS),
    )
    auto_resume: bool = _option(
        False,
        "Continue --run-dir from its newest complete snapshot (a restarted job; --resume auto is the same).",
        is_flag=True,
    )
    desc: str | None = _option(None, "Text added to the run folder's name.")
    run_dir: str | None = _option(None, "Write into exactly this folder (no numbered subfolder).", metavar="DIR")
    debug_hashes: bool = _option(
        False, "Each rank writes a hash of its weights at the end.", is_flag=True, hidden=True
    )
    continue_from: str | None = field(default=None, metadata=dict(cli=False))  # set by autoresume.resolve


def training_options(fn):
    """Decorate a click command with one option per TrainOptions field (help and default from the field)."""
    for f in reversed(dataclasses.fields(TrainOptions)):
        meta = dict(f.metadata)
        if not meta.get("cli", True):
            continue
        kwargs = dict(meta["click"], help=meta["help"])
        if not kwargs.get("required"):
            kwargs.update(default=f.default, show_default=f.default is not None and not kwargs.get("is_flag"))
        decls = meta["decls"] or ("--" + f.name.replace("_", "-"),)
        fn = click.option(*decls, f.name, **kwargs)(fn)
    return fn


# ---- options -> training_loop keyword arguments -----------------------------------------------------------------
def training_kwargs(opts: TrainOptions) -> tuple[dict, ImageFolderDataset]:
    """Check the metric names, open the dataset (once), and build `training_loop`'s keyword arguments.

    Under torchrun, --gpus follows WORLD_SIZE. Returns (kwargs, the open dataset); raises DatasetError for a bad
    dataset and click.BadParameter for options that do not fit it.
    """
    world = distrib.env_world()
    if world is not None:
        if opts.gpus not in (None, 1, world[1]):
            raise click.BadParameter(f"--gpus {opts.gpus} disagrees with torchrun's WORLD_SIZE={world[1]}")
        opts = dataclasses.replace(opts, gpus=world[1])
    check_metric_names(metric_names(opts.metrics))
    training_set = ImageFolderDataset(
        opts.data, use_labels=opts.cond, max_size=opts.max_size, xflip=opts.mirror, random_seed=opts.seed
    )
    try:
        kwargs = build_config(opts, training_set.num_channels, training_set.resolution, training_set.label_dim)
    except BaseException:
        training_set.close()
        raise
    return kwargs, training_set


def metric_names(metrics: str) -> list[str]:
    """--metrics as a list: comma-separated names, or 'none' (or nothing) for none."""
    return [] if metrics.strip().lower() in ("none", "") else [name.strip() for name in metrics.split(",")]


def check_metric_names(names: list[str]) -> None:
    """Refuse unknown metric names before training starts (NVIDIA's check), naming the registry's metrics."""
    from medgan_core.metrics import runner

    try:
        runner.check_metric_names(names)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} ('none' for no metrics)", param_hint="--metrics") from exc


def cfg_spec(cfg: str, gpus: int, resolution: int) -> dict:
    """The preset of `--cfg` (stylegan2-ada-pytorch's `auto` computed from the GPU count and the resolution)."""
    if cfg != "auto":
        return dict(CFG_SPECS[cfg])
    mb = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return dict(
        ref_gpus=gpus,
        mb=mb,
        mbstd=min(mb // gpus, 4),
        fmaps=1 if resolution >= 512 else 0.5,
        lrate=0.002 if resolution >= 1024 else 0.0025,
        gamma=0.0002 * resolution**2 / mb,
        ema=mb * 10 / 32,
        ramp=0.05,
        map=2,
    )


# ---- how many processes a CPU run uses (issue 27) ------------------------------------------------------------------
# A CPU run whose --gpus is not given runs one process with a thread per core (torch's default). Measured at the
# book's record settings on 2 cores (benchmarks/README.md, `bench_train.py --records --cpu-settings`): 2 threads
# in one process gave 1.42x (32x32) and 1.74x (64x64) one thread's speed, 2 gloo ranks of one thread each 1.32x
# and 1.63x. `--gpus N` on CPU runs N ranks sharing the cores out (`cpu_threads`).


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def on_cpu(device: str) -> bool:
    import torch

    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def resolve_gpus(opts: TrainOptions) -> int:
    """--gpus as given; else torchrun's WORLD_SIZE, else 1 (on CPU: one process, a thread per core; see above)."""
    if opts.gpus is not None:
        return opts.gpus
    world = distrib.env_world()
    return world[1] if world is not None else 1


def cpu_setting(kwargs: dict, cli_options: dict | None = None) -> str | None:
    """The log line saying how a CPU run uses the cores (None on GPUs)."""
    import torch

    if not on_cpu(kwargs["device"]):
        return None
    ranks, cores, threads = kwargs["num_gpus"], cpu_cores(), torch.get_num_threads()
    given = (cli_options or {}).get("gpus") is not None
    why = (
        "as given by --gpus"
        if given
        else f"chosen by medgan for {cores} core(s): threads measured as fast as gloo ranks; --gpus N for ranks"
    )
    if ranks == 1:
        return f"CPU setting: 1 process of {threads} thread(s) ({why})"
    return f"CPU setting: {ranks} gloo ranks of {threads} thread(s), batch {kwargs['batch_gpu']} each ({why})"


def cpu_threads(ranks: int) -> int:
    """Intra-op threads of each of `ranks` CPU ranks on this machine: the cores shared out, at least 1."""
    return max(1, cpu_cores() // ranks)


def resolve_options(opts: TrainOptions, resolution: int) -> tuple[TrainOptions, dict]:
    """Fill the options left to the preset; returns (resolved options, the preset)."""
    if opts.gpus is None:
        opts = dataclasses.replace(opts, gpus=resolve_gpus(opts))
    spec = cfg_spec(opts.cfg, opts.gpus, resolution)
    batch = opts.batch or spec["mb"]
    if opts.batch_gpu is not None:
        batch_gpu = opts.batch_gpu
    elif opts.batch is None and spec["ref_gpus"] is not None:
        batch_gpu = max(spec["mb"] // spec["ref_gpus"], 1)
    else:
        batch_gpu = batch // opts.gpus
    resolved = dataclasses.replace(
        opts,
        batch=batch,
        batch_gpu=batch_gpu,
        gamma=spec["gamma"] if opts.gamma is None else opts.gamma,
        cbase=int(spec["fmaps"] * 32768) if opts.cbase is None else opts.cbase,
        map=spec["map"] if opts.map is None else opts.map,
        mbstd_group=spec["mbstd"] if opts.mbstd_group is None else opts.mbstd_group,
        glr=spec["lrate"] if opts.glr is None else opts.glr,
        dlr=spec["lrate"] if opts.dlr is None else opts.dlr,
    )
    return resolved, spec


def _check_batch(o: TrainOptions) -> None:
    if o.batch % o.gpus != 0:
        raise click.BadParameter(f"--batch {o.batch} must be a multiple of --gpus {o.gpus}")
    if o.batch % (o.gpus * o.batch_gpu) != 0:
        raise click.BadParameter(f"--batch {o.batch} must be a multiple of --gpus times --batch-gpu ({o.batch_gpu})")
    if o.batch_gpu < o.mbstd_group:
        raise click.BadParameter(
            f"--batch-gpu {o.batch_gpu} must be at least the minibatch-std group ({o.mbstd_group}); "
            "lower it with --mbstd-group"
        )


def build_config(opts: TrainOptions, num_channels: int, resolution: int, label_dim: int) -> dict:
    """`training_loop`'s keyword arguments (= training_options.json, NVIDIA's layout) for a dataset's shape."""
    o, spec = resolve_options(opts, resolution)
    _check_batch(o)
    if o.cond and label_dim == 0:
        raise click.BadParameter("--cond needs labels in the dataset's dataset.json")
    fresh = o.resume is None
    augment = augpipe_specs[o.augpipe]
    return dict(  # NVIDIA's keys in the order of its train.py, then medgan's additions
        **_network_kwargs(o, num_channels, resolution, label_dim if o.cond else 0),
        loss_kwargs=dict(
            class_name=NVIDIA_CLASSES["loss"], r1_gamma=o.gamma, style_mixing_prob=0.9, pl_weight=2,
            pl_batch_shrink=2, pl_decay=0.01,
        ),
        data_loader_kwargs=dict(pin_memory=True, prefetch_factor=2, num_workers=o.workers),
        training_set_kwargs=dict(
            class_name=NVIDIA_CLASSES["dataset"], path=o.data, use_labels=o.cond, max_size=o.max_size,
            xflip=o.mirror, resolution=resolution, random_seed=o.seed,
        ),
        num_gpus=o.gpus,
        batch_size=o.batch,
        batch_gpu=o.batch_gpu,
        metrics=metric_names(o.metrics),
        total_kimg=o.kimg,
        kimg_per_tick=o.tick,
        image_snapshot_ticks=o.snap,
        network_snapshot_ticks=o.snap,
        random_seed=o.seed,
        ema_kimg=o.batch * 10 / 32 if spec["ema"] is None else spec["ema"],
        ema_rampup=spec["ramp"] if fresh else None,
        G_reg_interval=4,
        D_reg_interval=16,
        augment_kwargs=None if o.aug == "noaug" else dict(class_name=NVIDIA_CLASSES["augment"], **augment),
        augment_p=o.p if o.aug == "fixed" else 0.0,
        ada_target=o.target if o.aug == "ada" else None,
        ada_interval=4,
        ada_kimg=o.ada_kimg or (500 if fresh else 100),
        resume_pkl=o.continue_from or o.resume,  # a continuation (--auto-resume) keeps the run's own settings
        cudnn_benchmark=not o.nobench,
        device=o.device,  # medgan: auto, cpu or cuda
        debug_hashes=o.debug_hashes,  # medgan: each rank writes a hash of its weights at the end
        cli_options=dataclasses.asdict(opts),  # medgan: the command line as given
        run_dir=o.run_dir,  # the run folder (None: the next outdir/<00000-desc>, decided at launch)
    )  # fmt: skip


def _network_kwargs(o: TrainOptions, num_channels: int, resolution: int, c_dim: int) -> dict:
    """G_kwargs, D_kwargs and their Adam settings (NVIDIA's keys; channels and resolution filled in)."""
    common = dict(c_dim=c_dim, img_resolution=resolution, img_channels=num_channels)
    precision = dict(num_fp16_res=0, conv_clamp=None) if o.fp32 else dict(num_fp16_res=4, conv_clamp=256)
    channels = dict(channel_base=o.cbase, channel_max=o.cmax)
    G_kwargs = dict(
        class_name=NVIDIA_CLASSES["G"], z_dim=512, w_dim=512, **common, mapping_kwargs=dict(num_layers=o.map),
        **channels, **precision, fused_modconv_default="inference_only",
    )  # fmt: skip
    D_kwargs = dict(
        class_name=NVIDIA_CLASSES["D"], **common, **channels, **precision,
        block_kwargs=dict(freeze_layers=o.freezed), mapping_kwargs={},
        epilogue_kwargs=dict(mbstd_group_size=o.mbstd_group),
    )  # fmt: skip
    adam = dict(class_name=NVIDIA_CLASSES["opt"], betas=[o.beta1, 0.99], eps=1e-8)
    return dict(
        G_kwargs=G_kwargs, D_kwargs=D_kwargs, G_opt_kwargs=dict(adam, lr=o.glr), D_opt_kwargs=dict(adam, lr=o.dlr)
    )


def run_desc(opts: TrainOptions, kwargs: dict) -> str:
    """The run folder's description: --desc, or <dataset>-gpus<N>-batch<B>-gamma<g> (NVIDIA's parts)."""
    if opts.desc:
        return opts.desc
    name = os.path.splitext(os.path.basename(opts.data.rstrip("/")))[0]
    return f"{name}-gpus{kwargs['num_gpus']}-batch{kwargs['batch_size']}-gamma{kwargs['loss_kwargs']['r1_gamma']:g}"
