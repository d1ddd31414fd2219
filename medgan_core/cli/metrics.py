"""`medgan fid` (FID/KID between two image sets) and `medgan metrics` (fid50k_full etc. of a network)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import click

from medgan_core.cli.options import check_device, json_option, network_option, path_option

_INCEPTION_HELP = (
    "Inception weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth or NVIDIA's inception-2015-12-05 "
    "pkl/pt. Default: $MEDGAN_INCEPTION, else the cache, else a checked download."
)


def _load_detector(inception, device):
    from medgan_core.metrics.detector import load_inception
    from medgan_core.metrics.weights import InceptionWeightsNotFound

    try:
        return load_inception(inception, device=device)
    except (InceptionWeightsNotFound, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _json_number(value: float):
    return value if math.isfinite(value) else None


@click.command("fid")
@click.argument("real", type=click.Path(exists=True, path_type=Path))
@click.argument("generated", type=click.Path(exists=True, path_type=Path))
@path_option("--inception", folder=False, help=_INCEPTION_HELP)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--kid/--no-kid", default=False, show_default=True, help="Also compute KID (100 subsets of 1000).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@json_option('Print {"fid": ...} as JSON.')
def fid(real, generated, inception, batch_size, kid, device, as_json):
    """FID (and KID) between two folders or zips of images (PNG, JPEG, BMP, TIFF or WebP; 8-bit grayscale or RGB;
    one size and channel count per set, checked over the whole set before any work)."""
    from medgan_core.data.images import ImageSource
    from medgan_core.metrics.features import compute_source_stats
    from medgan_core.metrics.fid import FrechetDistanceError, fid_from_stats
    from medgan_core.metrics.kid import kernel_inception_distance

    check_device(device)
    try:
        sources = [ImageSource(path) for path in (real, generated)]
        for source in sources:
            source.check()  # the whole set, before any long work: one size and channel count, readable headers
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    detector = _load_detector(inception, device)
    stats = []
    for source in sources:
        try:
            stats.append(
                compute_source_stats(
                    source, detector, capture_all=kid, batch_size=batch_size, progress=not as_json, device=device
                )  # fmt: skip
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if min(s.num_items for s in stats) < 2:
        raise click.ClickException("FID needs at least 2 images in each set")
    try:
        value, report = fid_from_stats(stats[0], stats[1], return_report=True)
    except FrechetDistanceError as exc:
        raise click.ClickException(str(exc)) from exc
    output = {"fid": value, "num_real": stats[0].num_items, "num_gen": stats[1].num_items, "detector": detector.tag}
    if report["min_eigenvalue_clipped"] < 0:
        output["numerics"] = report
    if kid:
        output["kid"] = kernel_inception_distance(stats[0].get_all(), stats[1].get_all())
    if as_json:
        click.echo(json.dumps({k: _json_number(v) if isinstance(v, float) else v for k, v in output.items()}))
    else:
        click.echo(f"FID: {value:.6f}" + (f"  KID: {output['kid']:.6f}" if kid else ""))
        click.echo(f"({output['num_real']} real, {output['num_gen']} generated images; detector {detector.tag})")


def _dataset_options(network: Path, loaded: dict) -> dict | None:
    """The dataset options recorded with the network: its training_set_kwargs, else those of the
    training_options.json beside it (NVIDIA's run folder layout); None when neither has them."""
    from medgan_core.checkpoint import training_set_kwargs_of

    if loaded.get("training_set_kwargs"):
        return dict(loaded["training_set_kwargs"])
    options_file = network.parent / "training_options.json"
    if options_file.is_file():
        try:
            return training_set_kwargs_of(json.loads(options_file.read_text()))
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _run_dir(network: Path, given: str) -> Path | None:
    """NVIDIA's rule: the network's folder when it is a local file with training_options.json beside it."""
    if given != str(network) and "://" in given:
        return None
    return network.parent if (network.parent / "training_options.json").is_file() else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics_rank(rank: int, world_size: int, port: int, job: dict, out: str | None) -> list[dict]:
    """Compute every metric on one rank (a process of --gpus); rank 0 returns the results (and writes them to
    `out` when run as a spawned process)."""
    import os

    import torch

    from medgan_core.checkpoint import load_network
    from medgan_core.metrics import runner

    device = job["device"]
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if device.startswith("cuda"):
            device = f"cuda:{rank}"
            torch.cuda.set_device(rank)
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank,
                                             world_size=world_size)  # fmt: skip
    try:
        loaded = load_network(job["network"], device=device)
        G = loaded["G_ema"] if loaded.get("G_ema") is not None else loaded["G"]
        results = []
        for name in job["names"]:
            results.append(
                runner.calc_metric(
                    name,
                    G,
                    job["data"],
                    device,
                    rank=rank,
                    world_size=world_size,
                    cache_dir=job["cache_dir"],
                    inception=job["inception"],
                    vgg16=job["vgg16"],
                    progress=job["progress"] and rank == 0,
                    batch_size=job["batch_size"],
                    num_gen=job["num_gen"],
                    mirror=job["mirror"],
                )  # fmt: skip
            )
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()
    if rank == 0 and out is not None:
        Path(out).write_text(json.dumps(results))
    return results


def _spawned_rank(rank: int, world_size: int, port: int, job: dict, out: str) -> None:
    _metrics_rank(rank, world_size, port, job, out)


def _bool_value(value):
    """NVIDIA's boolean spellings: 1/0, true/false, yes/no (None when not given)."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise click.BadParameter(f"{value!r} is not a boolean (use 1/0 or true/false)", param_hint="--mirror")


@click.command("metrics")
@network_option
@path_option(
    "--data",
    exists=True,
    help="Real images (dataset zip or folder) [default: look up in the network or its run folder].",
)
@click.option(
    "--mirror",
    default=None,
    is_flag=False,
    flag_value="1",
    metavar="BOOL",
    help="Count mirrored reals (only fid<N>k/kid<N>k/pr<N>k<K> without _full use them, as NVIDIA's) "
    "[default: look up].",
)
@click.option(
    "--metrics",
    "metric_list",
    default="fid50k_full",
    show_default=True,
    help="Comma-separated: fid50k_full, kid50k_full, pr50k3_full, is50k, fid<N>k[_full], kid<N>k[_full], "
    "pr<N>k<K>[_full], is<N>k, mem1k, msssim1k.",
)
@click.option("--num-gen", type=click.IntRange(min=2), default=None, help="Override the generated-image count.")
@path_option("--inception", folder=False, help=_INCEPTION_HELP)
@path_option(
    "--vgg16",
    folder=False,
    help="VGG16 weights for pr* metrics: torchvision's vgg16-397923af.pth or NVIDIA's vgg16.pkl/pt. "
    "Default: $MEDGAN_VGG16, else the cache, else a checked download.",
)
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="Number of processes.")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@path_option(
    "--cache-dir",
    folder=True,
    default=None,
    help="Cache for real-image statistics (default $MEDGAN_CACHE or ~/.cache/medgan).",
)
@json_option("Print NVIDIA's JSON line per metric.")
def metrics(network_path, data, mirror, metric_list, num_gen, inception, vgg16, gpus, batch_size, device, cache_dir,
            as_json):  # fmt: skip
    """Compute metrics of a trained generator (G_ema) against real images, e.g. fid50k_full, pr50k3_full, is50k.

    Without --data the dataset is looked up as NVIDIA's calc_metrics.py does (the network's training_set_kwargs,
    else training_options.json beside it). When the network lies in a run folder (training_options.json beside
    it), each result is appended to metric-<name>.jsonl there in NVIDIA's format, under the folder's writer lock:
    a folder that `medgan train` still writes is refused (exit 75) before the metrics are computed.
    """
    from medgan_core.metrics import runner

    mirror = _bool_value(mirror)
    check_device(device)
    if gpus > 1 and device.startswith("cuda"):
        import torch

        if torch.cuda.device_count() < gpus:
            raise click.BadParameter(f"{gpus} GPUs asked, {torch.cuda.device_count()} present", param_hint="--gpus")
    try:
        names = runner.check_metric_names(metric_list)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    for name in names:
        available, reason = runner.is_available(name, inception=inception, vgg16=vgg16)
        if not available:
            raise click.ClickException(f"metric {name}: {reason}")
    from medgan_core.checkpoint import CheckpointError, load_network, resolve_network

    try:
        network = resolve_network(network_path)
        loaded = load_network(network)
    except (CheckpointError, OSError) as exc:  # includes a refused pickle and a failed download
        raise click.ClickException(str(exc)) from exc
    if loaded.get("G_ema") is None and loaded.get("G") is None:
        raise click.ClickException(f"{network}: holds no generator (G_ema or G)")
    dataset = _dataset_options(network, loaded) or {}
    if data is None:
        if not dataset.get("path"):
            raise click.UsageError("could not look up the dataset in the network or its run folder; pass --data")
        data = Path(dataset["path"])
        if not data.exists():
            raise click.ClickException(f"the network's dataset {data} does not exist here; pass --data")
    mirror = bool(dataset.get("xflip", False)) if mirror is None else mirror
    job = dict(network=str(network), names=names, data=str(data), device=device, cache_dir=cache_dir,
               inception=inception, vgg16=vgg16, progress=not as_json, batch_size=batch_size, num_gen=num_gen,
               mirror=mirror)  # fmt: skip
    run_dir = _run_dir(network, str(network_path))
    with _run_folder_lock(run_dir, "Run this again once it ended."):  # refused before computing anything
        pass
    try:
        results = _compute(job, gpus)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for result in results:
        if as_json:
            click.echo(runner.metric_line(result, run_dir, network.resolve()))
        else:
            values = "  ".join(f"{key} {value:.6f}" for key, value in result["results"].items())
            click.echo(f"{values}  ({result['total_time_str']})")
    if run_dir is not None:
        with _run_folder_lock(run_dir, "The values above were not appended; run this again once it ended."):
            for result in results:
                runner.report_metric(result, run_dir, snapshot=network.resolve())
        if not as_json:
            click.echo(f"appended to {', '.join(f'metric-{name}.jsonl' for name in names)} in {run_dir}")


@contextlib.contextmanager
def _run_folder_lock(run_dir: Path | None, advice: str):
    """The run folder's writer lock (utils/runlock.py) inside the block; a held folder or a failed write exits
    with one line and the trainer's codes (75 held, 74 not writable)."""
    from medgan_core.utils.io import EXIT_DISK_FAULT, DiskFault
    from medgan_core.utils.runlock import EXIT_LOCKED, RunLocked, run_lock

    if run_dir is None:
        yield
        return
    try:
        with run_lock(run_dir, purpose="medgan metrics", advice=advice, log=lambda line: click.echo(line, err=True)):
            yield
    except (RunLocked, DiskFault) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_DISK_FAULT if isinstance(exc, DiskFault) else EXIT_LOCKED)


def _compute(job: dict, gpus: int) -> list[dict]:
    """Run the metrics in this process (--gpus 1) or in `gpus` spawned processes, rank 0's results."""
    if gpus == 1:
        return _metrics_rank(0, 1, 0, job, None)
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "results.json")
        torch.multiprocessing.spawn(_spawned_rank, args=(gpus, _free_port(), job, out), nprocs=gpus)
        return json.loads(Path(out).read_text())
