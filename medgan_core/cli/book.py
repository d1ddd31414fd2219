"""`medgan book build`: execute the chapter notebooks with papermill and build the Jupyter Book."""

from __future__ import annotations

import click


@click.group()
def book() -> None:
    """The reproducible book: execute the chapters and build the HTML."""


@book.command()
@click.option(
    "--chapters", default=None, metavar="LIST", help="Chapters to execute, e.g. '1,3' or '01_data' [default: all]."
)
@click.option("--smoke", is_flag=True, help="Tiny parameters (seconds per chapter): what CI runs.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Build in this folder (book sources copied there) instead of the repository.",
)
@click.option("--no-html", is_flag=True, help="Only execute the notebooks.")
def build(chapters: str | None, smoke: bool, out: str | None, no_html: bool) -> None:
    """Execute every chapter with papermill into book/_generated, then `jupyter-book build` to _build/html."""
    from medgan_core.book.build import build as build_book

    try:
        html = build_book(chapters=chapters, smoke=smoke, out=out, html=not no_html, log=click.echo)
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"open {html / 'index.html'}")
