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
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help="Only the first N sources (sorted by path); outputs of the others are removed.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Secret key that names the outputs [default: $MEDGAN_KEY_FILE, else ~/.config/medgan/naming.key, "
    "created when missing]. Keep it outside --out; the same key gives the same names on a rerun.",
)
@click.option("--show-paths", is_flag=True, help="Name failed sources by their path (may show patient names).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def prep(
    name: str,
    src: Path | None,
    out: Path,
    workers: int,
    limit: int | None,
    key_file: Path | None,
    show_paths: bool,
    progress: bool,
) -> None:
    """Run recipe NAME (a manifest in data_manifests/, e.g. liver-ct, sliver07, chestxray14, acdc, msd-brain,
    mni-brain, pydicom-samples) over --src, writing anonymous PNGs and index.csv to --out.

    Output names are an HMAC of each source's path under a secret key kept outside --out, so nobody without
    the key can link a PNG to a patient folder. Back the key up with the raw data: without it a rerun names
    (and makes) every slice anew. Public bundled recipes (mni-brain, pydicom-samples) use a fixed public key.

    A rerun reuses only sources whose files, mask and recipe settings are unchanged and whose PNGs are intact,
    and deletes outputs no longer produced, so --out always matches index.csv. One --out holds one recipe.
    Prints how many slices it made and whether that matches the manifest's count; exits non-zero when any
    source failed (every failure is listed with its anonymous id, or its path with --show-paths, and reason).
    """
    from medgan_core.data.pipeline import run_prep
    from medgan_core.data.recipes import Recipe

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        recipe = Recipe.from_name(name)
        report = run_prep(
            recipe, src, out, workers=workers, limit=limit, progress=progress, key_file=key_file, show_paths=show_paths
        )
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
    help="Folder of images (e.g. the output of medgan prep); a dataset.json there gives the labels.",
)
@click.option("--dest", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Zip to write.")
@click.option(
    "--resolution",
    type=click.IntRange(min=4),
    help="Output side: square images of another size are resized to it with Lanczos (PIL, as NVIDIA's "
    "dataset_tool.py); non-square images are refused, not stretched. Default: keep the sizes.",
)
@click.option(
    "--labels",
    "labels_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with columns file,label (file relative to --source). Default: the source's dataset.json if any.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def dataset(source: Path, dest: Path, resolution: int | None, labels_csv: Path | None, progress: bool) -> None:
    """Package images as a StyleGAN2-ADA dataset zip (PNGs + dataset.json in NVIDIA's layout).

    Every image is decoded in full and must be 8-bit grayscale or RGB, square, a power of two on a side (after
    --resolution) and of one size and channel count. Every offending file is named with its reason; then nothing
    is written and the exit status is non-zero.
    """
    from medgan_core.data.packaging import DatasetError, make_dataset_zip

    try:
        info = make_dataset_zip(source, dest, resolution=resolution, labels_csv=labels_csv, progress=progress)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    labels = "with labels" if info["labels"] else "labels null"
    resized = f", {info['resized']} resized (Lanczos)" if info["resized"] else ""
    click.echo(
        f"{dest}: {info['images']} images, {info['resolution']}x{info['resolution']}, "
        f"{info['channels']} channel(s), {labels}{resized}"
    )
