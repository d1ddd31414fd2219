"""Command-line pieces several `medgan` commands share, written once: path options, --network, --json, --device."""

from __future__ import annotations

from pathlib import Path

import click


def path_option(*param_decls: str, folder: bool | None = None, exists: bool = False, **kwargs):
    """A click option for a path, handed to the command as a `pathlib.Path`.

    folder: True for a folder, False for a file, None for either; exists: the path must exist already.
    """
    kind = click.Path(exists=exists, file_okay=folder is not True, dir_okay=folder is not False, path_type=Path)
    return click.option(*param_decls, type=kind, **kwargs)


# --network (given as `network_path`): what `checkpoint.resolve_network` accepts.
network_option = click.option(
    "--network",
    "network_path",
    required=True,
    help="NVIDIA network pickle (.pkl), medgan checkpoint (.safetensors), or a URL of NVIDIA's published pickles "
    "(downloaded once into the cache; $MEDGAN_OFFLINE=1 never downloads).",
)


def json_option(help: str):
    """--json (given as `as_json`): machine-readable output instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def check_device(device: str) -> None:
    """Refuse a CUDA device on a machine without CUDA, naming --device and the way out."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu", param_hint="--device")
