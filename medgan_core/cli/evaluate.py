"""`medgan memorization`, `medgan diversity`, `medgan frd`: evaluation that needs no network weights."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import click

from medgan_core.cli.options import json_option, path_option

_generated_option = path_option("--generated", exists=True, required=True, help="Folder or zip of generated PNGs.")


def _load(path: str, what: str, max_images: int | None = None):
    from medgan_core.evaluation.images import load_images

    try:
        return load_images(path, max_images=max_images)
    except (FileNotFoundError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=what) from exc


def _echo_result(as_json: bool, result: dict, *lines: str) -> None:
    """Print `result` as one JSON line, or the text `lines`."""
    for line in [json.dumps(result)] if as_json else lines:
        click.echo(line)


def _check_same_shape(a, b, name_a: str, name_b: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise click.UsageError(
            f"{name_a} images are {a.shape[1:]} but {name_b} images are {b.shape[1:]} "
            "(H, W, C): resize one set so both match"
        )


@click.command()
@_generated_option
@path_option("--train", "train_path", exists=True, required=True, help="Training images (folder or dataset zip).")
@path_option(
    "--holdout",
    exists=True,
    help="Held-out real images, ideally other patients (default: leave-one-out on the training set).",
)
@click.option("--top", default=5, show_default=True, help="Nearest training images kept per generated image.")
@click.option("--fpr", default=0.01, show_default=True, help="Fraction of held-out images that would be flagged.")
@click.option("--size", default=64, show_default=True, help="Side of the downsampled images compared.")
@click.option("--pairs", "num_pairs", default=16, show_default=True, help="Closest pairs shown in the grid.")
@path_option("--out", "outdir", help="Write report, plot, grid and CSV here.")
@path_option(
    "--inception",
    help="Inception weights for a second search in feature space (default: $MEDGAN_INCEPTION or the cache; "
    "skipped with a note when none are at hand; never downloads).",
)
@click.option("--device", default="cpu", show_default=True)
@json_option("Print the summary as JSON.")
def memorization(generated, train_path, holdout, top, fpr, size, num_pairs, outdir, inception, device, as_json):
    """Flag generated images closer to a training image than held-out real images are (1 - NCC distance).

    Where Inception weights are at hand the same check also runs on Inception-v3 pool features (cosine).
    """
    from medgan_core.evaluation.memorization import closest_pairs_grid, find_memorized, plot_distances
    from medgan_core.utils.io import atomic_write, save_png

    gen_images, gen_names = _load(generated, "--generated")
    train_images, train_names = _load(train_path, "--train")
    _check_same_shape(gen_images, train_images, "generated", "training")
    hold_images = None
    if holdout is not None:
        hold_images, _ = _load(holdout, "--holdout")
        _check_same_shape(hold_images, train_images, "held-out", "training")
    start = time.time()
    result = find_memorized(gen_images, train_images, hold_images, fpr=fpr, top=top, size=size, device=device)
    summary = result.summary() | {"seconds": round(time.time() - start, 3)}
    summary["inception"] = _inception_check(gen_images, train_images, hold_images, inception, fpr, top, device)
    if outdir is not None:
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "memorization.json", "w") as f:
            json.dump(summary, f, indent=2)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["generated", "nearest_train", "distance", "flagged"])
        for i, name in enumerate(gen_names):
            nearest = train_names[result.generated_neighbours[i, 0]]
            writer.writerow([name, nearest, f"{result.generated_distances[i]:.6f}", int(result.flagged[i])])
        with atomic_write(out / "nearest.csv", "w") as f:
            f.write(buffer.getvalue())
        plot_distances(result, out / "distances.png")
        save_png(closest_pairs_grid(result, gen_images, train_images, num_pairs), out / "closest_pairs.png")
    inc = summary["inception"]
    _echo_result(
        as_json,
        summary,
        f"flagged {summary['num_flagged']} of {summary['num_generated']} generated images "
        f"({summary['flagged_fraction']:.1%}); threshold {result.threshold:.4f} "
        f"({result.reference} reference, {fpr:.0%} false-positive rate)",
        f"Inception features: flagged {inc['num_flagged']} ({inc['flagged_fraction']:.1%})"
        if inc["available"]
        else "Inception features: skipped (no weights at hand; see --inception)",
    )


def _inception_check(gen_images, train_images, hold_images, inception, fpr, top, device) -> dict:
    """The memorisation summary in Inception feature space, or {'available': False, 'reason': ...}."""
    from medgan_core.evaluation.memorization import find_memorized_by_features
    from medgan_core.metrics.detector import load_inception
    from medgan_core.metrics.weights import InceptionWeightsNotFound

    try:
        detector = load_inception(inception, device=device, download=False, progress=False)
    except InceptionWeightsNotFound as exc:
        if inception is not None:
            raise click.BadParameter(str(exc), param_hint="--inception") from exc
        return {"available": False, "reason": str(exc)}
    result = find_memorized_by_features(gen_images, train_images, hold_images, detector, fpr=fpr, top=top)
    return {"available": True, "detector": detector.tag} | result.summary()


@click.command()
@_generated_option
@path_option("--real", exists=True, help="Real images to compare with.")
@click.option("--pairs", "num_pairs", default=1000, show_default=True, help="Random pairs per set.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@json_option("Print the result as JSON.")
def diversity(generated, real, num_pairs, seed, device, as_json):
    """Mean pairwise MS-SSIM (lower = more diverse) of generated and real images."""
    from medgan_core.evaluation.diversity import diversity_report

    gen_images, _ = _load(generated, "--generated")
    real_images = None
    if real is not None:
        real_images, _ = _load(real, "--real")
        _check_same_shape(gen_images, real_images, "generated", "real")
    try:
        result = diversity_report(gen_images, real_images, num_pairs=num_pairs, seed=seed, device=device)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    real_text = "" if result.real_mean is None else f", real {result.real_mean:.4f} (SD {result.real_std:.4f})"
    _echo_result(
        as_json,
        result.summary(),
        f"mean pairwise MS-SSIM over {num_pairs} pairs ({result.scales} scales): generated "
        f"{result.generated_mean:.4f} (SD {result.generated_std:.4f}){real_text}",
    )


@click.command()
@click.argument("path_a", type=click.Path(exists=True, file_okay=False))
@click.argument("path_b", type=click.Path(exists=True, file_okay=False))
@click.option("--workers", default=1, show_default=True)
@click.option("--resize", type=int, default=None, help="Resize images to this side before feature extraction.")
@json_option("Print the result as JSON.")
def frd(path_a, path_b, workers, resize, as_json):
    """Fréchet Radiomics Distance between two folders of PNGs (needs the optional FRD extra)."""
    from medgan_core.evaluation.frd import compute_frd, frd_available

    ok, reason = frd_available()
    if not ok:
        raise click.ClickException(reason)
    result = compute_frd(path_a, path_b, num_workers=workers, resize=resize)
    _echo_result(
        as_json,
        result,
        f"FRD (frd-score {result['version']}, log scale) {result['frd']:.4f}; "
        f"Fréchet distance {result['frechet_distance']:.4f}",
    )
