"""`medgan export`: a medgan snapshot -> a network pickle of NVIDIA's own classes, for NVIDIA's tools."""

from __future__ import annotations

from pathlib import Path

import click

from medgan_core.cli.options import path_option


@click.command("export")
@click.argument("snapshot")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@path_option(
    "--nvidia-src",
    folder=True,
    help="Checkout of NVlabs/stylegan3 (or stylegan2-ada-pytorch) whose classes build the pickle "
    "[default: $MEDGAN_NVIDIA_SRC].",
)
def export(snapshot, out, nvidia_src):
    """Write SNAPSHOT (a .safetensors snapshot, a network pickle or its URL) to OUT.pkl as NVIDIA's pickle.

    OUT holds G, D, G_ema, augment_pipe and training_set_kwargs as NVIDIA's training writes them; their
    legacy.load_network_pkl, gen_images.py and calc_metrics.py read it. The code of the checkout is imported
    (and so run): use a checkout you trust.
    """
    from medgan_core.checkpoint import CheckpointError, resolve_network
    from medgan_core.checkpoint.export import export_nvidia_pickle

    try:
        path = resolve_network(snapshot)
        written = export_nvidia_pickle(path, out, nvidia_src=nvidia_src)
    except CheckpointError as exc:  # includes a missing checkout and a failed download
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {written} (NVIDIA network pickle from {path})")
