"""`medgan prep` (scans -> 8-bit PNG slices) and `medgan dataset` (PNG slices -> StyleGAN2-ADA zip)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click


@click.command()
@click.argument("name")
@click.option("--src", type=click.Path(file_okay=False, path_type=Path), help="Downloaded dataset folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="PNG writer threads.")
@click.option("--limit", type=click.IntRange(min=0), help="Process only the first N sources (sorted by path).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def prep(name: str, src: Path | None, out: Path, workers: int, limit: int | None, progress: bool) -> None:
    """Run recipe NAME (a manifest in data_manifests/, e.g. liver-ct, sliver07, chestxray14, acdc, msd-brain,
    mni-brain, pydicom-samples) over --src, writing anonymous PNGs and index.csv to --out.

    Prints how many slices it made and whether that matches the manifest's count; exits non-zero when any
    source failed (every failure is listed with its file and reason).
    """
    from medgan_core.data.pipeline import run_prep
    from medgan_core.data.recipes import Recipe

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        recipe = Recipe.from_name(name)
        report = run_prep(recipe, src, out, workers=workers, limit=limit, progress=progress)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    if report.failures:
        sys.exit(1)


@click.command()
@click.option(
    "--source",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of PNG slices (e.g. the output of medgan prep).",
)
@click.option("--dest", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Zip to write.")
@click.option("--resolution", type=click.IntRange(min=1), help="Required side length (checked, not resized).")
@click.option(
    "--labels",
    "labels_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with columns file,label (file relative to --source); default: no labels.",
)
def dataset(source: Path, dest: Path, resolution: int | None, labels_csv: Path | None) -> None:
    """Package PNGs as a StyleGAN2-ADA dataset zip (images + dataset.json), checking that every image is
    square, a power of two, the same size and the same channel count; offending files are named."""
    from medgan_core.data.packaging import DatasetError, make_dataset_zip

    try:
        info = make_dataset_zip(source, dest, resolution=resolution, labels_csv=labels_csv)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    labels = "with labels" if info["labels"] else "labels null"
    click.echo(
        f"{dest}: {info['images']} images, {info['resolution']}x{info['resolution']}, "
        f"{info['channels']} channel(s), {labels}"
    )
