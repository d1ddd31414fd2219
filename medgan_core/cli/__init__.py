"""The `medgan` command line: one click group, each command family in its own small module.

Commands are imported lazily, so `medgan --help` stays fast and a command whose optional dependencies are
missing does not break the others.
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "generate": "medgan_core.cli.generate:generate",
    "train": "medgan_core.cli.train:train",
    "fid": "medgan_core.cli.metrics:fid",
    "metrics": "medgan_core.cli.metrics:metrics",
    "prep": "medgan_core.cli.data:prep",
    "dataset": "medgan_core.cli.data:dataset",
    "turing": "medgan_core.cli.turing:turing",
    "memorization": "medgan_core.cli.evaluate:memorization",
    "diversity": "medgan_core.cli.evaluate:diversity",
    "frd": "medgan_core.cli.evaluate:frd",
    "book": "medgan_core.cli.book:book",
    "grid": "medgan_core.cli.grid:grid",
    "export": "medgan_core.cli.export:export",
}

_SHORT_HELP = {
    "generate": "Generate PNG images from a network pickle or checkpoint.",
    "train": "Train StyleGAN2-ADA (single process or torchrun multi-GPU).",
    "fid": "FID (and KID) between two folders or zips of PNGs.",
    "metrics": "Compute metrics such as fid50k_full for a trained network.",
    "prep": "Run a preprocessing recipe: scans -> 8-bit PNG slices.",
    "dataset": "Package PNG slices as a StyleGAN2-ADA dataset zip.",
    "turing": "Build and analyse visual Turing tests.",
    "memorization": "Flag generated images that copy training images.",
    "diversity": "Mean pairwise MS-SSIM of generated and real images.",
    "frd": "Frechet Radiomics Distance between two folders (optional extra).",
    "book": "Execute the chapter notebooks and build the Jupyter Book.",
    "grid": "Submit the ablation grid (SLURM or local) and show its status.",
    "export": "Write a snapshot as an NVIDIA network pickle (needs their checkout).",
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("medgan_core"):
                raise click.ClickException(f"'medgan {name}' is not available in this version") from exc
            raise click.ClickException(
                f"'medgan {name}' needs the optional package '{exc.name}': pip install {exc.name}"
            ) from exc
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medgan-core")
def main() -> None:
    """medgan: StyleGAN2-ADA on medical images, from a laptop CPU to eight GPUs."""
