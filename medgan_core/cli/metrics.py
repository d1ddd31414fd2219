"""`medgan fid` (FID/KID between two image sets) and `medgan metrics` (fid50k_full etc. of a network)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

_INCEPTION_HELP = (
    "Inception weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth or NVIDIA's inception-2015-12-05 "
    "pkl/pt. Default: $MEDGAN_INCEPTION, else the cache, else a checked download."
)


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu", param_hint="--device")


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
@click.option("--inception", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_INCEPTION_HELP)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--kid/--no-kid", default=False, show_default=True, help="Also compute KID (100 subsets of 1000).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help='Print {"fid": ...} as JSON.')
def fid(real, generated, inception, batch_size, kid, device, as_json):
    """FID (and KID) between two folders or zips of images (PNG, JPEG, BMP, TIFF or WebP; 8-bit grayscale or RGB;
    one size and channel count per set, checked over the whole set before any work)."""
    from medgan_core.data.images import ImageSource
    from medgan_core.metrics.features import compute_source_stats
    from medgan_core.metrics.fid import FrechetDistanceError, fid_from_stats
    from medgan_core.metrics.kid import kernel_inception_distance

    _check_device(device)
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


@click.command("metrics")
@click.option(
    "--network",
    "network_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="NVIDIA network pickle or medgan checkpoint.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Real images: the training dataset zip or folder.",
)
@click.option(
    "--metrics",
    "metric_list",
    default="fid50k_full",
    show_default=True,
    help="Comma-separated: fid50k_full, kid50k_full, fid<N>k[_full], kid<N>k[_full], mem1k, msssim1k.",
)
@click.option("--num-gen", type=click.IntRange(min=2), default=None, help="Override the generated-image count.")
@click.option("--inception", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_INCEPTION_HELP)
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache for real-image statistics (default $MEDGAN_CACHE or ~/.cache/medgan).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per metric.")
def metrics(network_path, data, metric_list, num_gen, inception, batch_size, device, cache_dir, as_json):
    """Compute metrics of a trained generator (G_ema) against real images, e.g. fid50k_full."""
    from medgan_core.metrics import runner

    _check_device(device)
    names = [name.strip() for name in metric_list.split(",") if name.strip()]
    for name in names:
        available, reason = runner.is_available(name, inception=inception)
        if not available:
            raise click.ClickException(f"metric {name}: {reason}")
    try:
        from medgan_core.checkpoint import CheckpointError, UnsafePickleError, load_network
    except ImportError as exc:
        raise click.ClickException(f"loading networks needs medgan_core.checkpoint ({exc})") from exc
    try:
        loaded = load_network(network_path, device=device)
    except (CheckpointError, UnsafePickleError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    G = loaded.get("G_ema") if loaded.get("G_ema") is not None else loaded.get("G")
    if G is None:
        raise click.ClickException(f"{network_path}: holds no generator (G_ema or G)")
    for name in names:
        try:
            result = runner.calc_metric(name, G, data, device, cache_dir=cache_dir, inception=inception,
                                        progress=not as_json, batch_size=batch_size, num_gen=num_gen)  # fmt: skip
        except (FileNotFoundError, ValueError) as exc:
            raise click.ClickException(f"metric {name}: {exc}") from exc
        if as_json:
            click.echo(json.dumps(result))
        else:
            values = "  ".join(f"{key} {value:.6f}" for key, value in result["results"].items())
            click.echo(f"{values}  ({result['total_time_str']})")
