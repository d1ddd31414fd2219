"""`medgan generate`: PNG images from an NVIDIA network pickle or a medgan checkpoint."""

from __future__ import annotations

import click

from medgan_core.cli.options import check_device, network_option, path_option

NETWORK_CHOICES = ("G_ema", "G")


@click.command("generate")
@network_option
@click.option("--seeds", default="0-15", show_default=True, help="Seeds, e.g. '0-15' or '1,5,9-11'.")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option(
    "--trunc-cutoff",
    "truncation_cutoff",
    type=click.IntRange(min=0),
    default=None,
    help="Truncate only the first N ws (default: all).",
)
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@path_option("--outdir", folder=True, required=True, help="Folder for seedNNNN.png files (created if missing).")
@path_option("--grid", "grid_path", folder=False, help="Also write all images tiled into this PNG.")
@click.option("--class", "class_idx", type=int, default=None, help="Class index (conditional networks).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--batch", "batch_size", type=click.IntRange(min=1), default=None, help="Images per G call [default: by device]."
)
@click.option(
    "--net",
    "which",
    type=click.Choice(NETWORK_CHOICES),
    default="G_ema",
    show_default=True,
    help="Which generator of the file to use.",
)
def generate(
    network_path,
    seeds,
    truncation_psi,
    truncation_cutoff,
    noise_mode,
    outdir,
    grid_path,
    class_idx,
    device,
    batch_size,
    which,
):
    """Generate images: one 8-bit PNG per seed (grayscale or RGB, no metadata), optionally a grid."""
    from medgan_core.checkpoint import CheckpointError, NetworkFetchError, load_network, resolve_network
    from medgan_core.generate import generate_images, image_grid
    from medgan_core.utils.io import parse_int_list, save_png

    try:
        seed_list = parse_int_list(seeds)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (expected e.g. '0-15' or '1,5,9-11')", param_hint="--seeds") from exc
    bad_seeds = [seed for seed in seed_list if not 0 <= seed < 2**32]
    if bad_seeds:
        raise click.BadParameter(f"seeds must lie in 0 .. 2**32 - 1, got {bad_seeds}", param_hint="--seeds")
    check_device(device)
    try:
        network_path = resolve_network(network_path)
    except NetworkFetchError as exc:  # a missing file, or a URL that cannot be fetched (offline: what to do)
        raise click.BadParameter(str(exc), param_hint="--network") from exc

    try:
        loaded = load_network(network_path, device=device)
    except CheckpointError as exc:  # includes UnsafePickleError: a refused pickle
        raise click.ClickException(str(exc)) from exc
    G = loaded[which] if loaded[which] is not None else loaded["G"]
    if G is None:
        raise click.ClickException(f"{network_path}: holds no generator (G_ema or G)")
    if G.c_dim == 0 and class_idx is not None:
        click.echo("warning: --class ignored: the network is unconditional", err=True)
        class_idx = None
    if G.c_dim > 0 and (class_idx is None or not 0 <= class_idx < G.c_dim):
        got = "none given" if class_idx is None else f"got {class_idx}"
        raise click.BadParameter(
            f"the network has {G.c_dim} classes: give 0 .. {G.c_dim - 1} ({got})", param_hint="--class"
        )

    images = generate_images(
        G,
        seed_list,
        truncation_psi=truncation_psi,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
        class_idx=class_idx,
        device=device,
        batch_size=batch_size,
        progress=True,
    )
    outdir.mkdir(parents=True, exist_ok=True)
    for seed, image in zip(seed_list, images):
        save_png(image, outdir / f"seed{seed:04d}.png")
    if grid_path is not None:
        save_png(image_grid(images), grid_path)
    click.echo(
        f"wrote {len(seed_list)} images of {images.shape[2]}x{images.shape[1]}x{images.shape[3]} to {outdir}"
        + (f" and a grid to {grid_path}" if grid_path is not None else "")
    )
