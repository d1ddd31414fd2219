"""`python -m medgan_core.train` / `torchrun --nproc_per_node N -m medgan_core.train`: train StyleGAN2-ADA.

The same options as `medgan train` (see medgan_core.training.options for every default and its value).
Multi-node: torchrun's usual --nnodes, --node_rank, --rdzv_backend, --rdzv_endpoint arguments.
"""

from __future__ import annotations

import signal

import click

from medgan_core.training.options import training_options


def run_from_kwargs(**kwargs) -> None:
    """Shared body of `medgan train` and this module: allocator, validation, launch; errors become click's."""
    from medgan_core.training import allocator
    from medgan_core.training.dataset import DatasetError
    from medgan_core.training.launch import launch
    from medgan_core.training.options import options_from_kwargs

    opts = options_from_kwargs(kwargs)
    if not opts.dry_run:
        opts.allocator = allocator.ensure(opts.allocator, opts.device)
    try:
        result = launch(opts)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    if result is not None and result.get("stopped_by"):  # the usual 128 + signal number (130 Ctrl-C, 143 TERM)
        name = result["stopped_by"]
        raise SystemExit(128 + signal.Signals[name].value if name in signal.Signals.__members__ else 1)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@training_options
def main(**kwargs) -> None:
    """Train StyleGAN2(-ADA) on a folder or zip of PNGs (NVIDIA's StyleGAN2 configuration by default)."""
    run_from_kwargs(**kwargs)


if __name__ == "__main__":
    main()
