"""`medgan turing build` and `medgan turing analyze`: argument handling only; the work is in medgan_core.turing."""

from __future__ import annotations

import click

from medgan_core.cli.options import json_option, path_option


@click.group()
def turing() -> None:
    """Build and analyse visual Turing tests."""


@turing.command()
@path_option("--real", "real_dir", folder=True, exists=True, required=True, help="Folder of real images (PNG).")
@path_option(
    "--generated",
    "generated_dirs",
    folder=True,
    exists=True,
    required=True,
    multiple=True,
    help="Folder of generated images; repeat for a multi-model test (one section per folder).",
)
@click.option(
    "--n-real",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Real images per section (never reused across sections).",
)
@click.option(
    "--n-generated", default=50, show_default=True, type=click.IntRange(min=1), help="Generated images per section."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed: the same seed gives the same test.")
@path_option(
    "--out", "out_dir", folder=True, required=True, help="Output folder for turing_test.html and answer_key.csv."
)
@click.option("--title", default="Visual Turing test", show_default=True, help="Title shown to raters.")
@click.option(
    "--likert/--no-likert", default=True, show_default=True, help="Also ask for a 1-5 score (1 = fake, 5 = real)."
)
@click.option(
    "--shuffle-per-rater",
    is_flag=True,
    help="Show each rater the images in their own seeded random order (sections kept together; the seed goes "
    "into the exported CSV). Default: the paper's design, one fixed order for every rater.",
)
@click.option(
    "--min-foreground",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Skip real images whose foreground (pixels more than 10 grey levels from the border's most common value) "
    "covers less than this fraction of the frame; 0 keeps all.",
)
def build(
    real_dir, generated_dirs, n_real, n_generated, seed, out_dir, title, likert, shuffle_per_rater, min_foreground
) -> None:
    """Sample a visual Turing test into a self-contained HTML file and a separate answer key."""
    from medgan_core.turing.build import TuringBuildError, build_turing_test

    try:
        test = build_turing_test(
            real_dir,
            list(generated_dirs),
            out_dir,
            n_real,
            n_generated,
            seed,
            title,
            likert,
            shuffle_per_rater=shuffle_per_rater,
            min_foreground=min_foreground,
        )
    except TuringBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    order = ", ".join(f"{k + 1}: {name}" for k, name in enumerate(test.sections))
    if test.n_skipped_empty:
        click.echo(
            f"skipped {test.n_skipped_empty} near-empty real image(s) (foreground under {min_foreground:.0%} of the "
            "frame; --min-foreground 0 keeps them)"
        )
    click.echo(f"wrote {test.html_path} ({test.n_images} images; sections {order})")
    click.echo(f"wrote {test.key_path} (answer key: keep it away from the raters; send only the HTML file)")


def _parse_fids(values: tuple[str, ...]) -> dict[str, float]:
    fids: dict[str, float] = {}
    for text in values:
        section, sep, value = text.rpartition("=")
        try:
            if not sep or not section:
                raise ValueError
            fids[section] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{text!r}: expected SECTION=VALUE, e.g. exp1=10.43", param_hint="--fid"
            ) from None
    return fids


@turing.command()
@click.argument("responses", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@path_option(
    "--key",
    folder=False,
    exists=True,
    help="Answer key CSV from `medgan turing build` (else the responses need a truth column).",
)
@click.option(
    "--fid",
    "fid_values",
    multiple=True,
    metavar="SECTION=VALUE",
    help="FID of the model shown in SECTION (repeat); enables the FID vs FPR correlation.",
)
@click.option(
    "--alpha",
    default=0.10,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Significance level (the paper's 0.10 for Turing tests).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of Monte Carlo permutation tests.")
@json_option("Print JSON (rates as fractions in [0, 1]).")
@path_option("--figures", "figures_dir", folder=True, help="Also write figures (PNG) into this folder.")
def analyze(responses, key, fid_values, alpha, seed, as_json, figures_dir) -> None:
    """Analyse Turing-test RESPONSES: one or more CSVs (rater, image, answer, [likert], [section], [truth],
    [test_id]), e.g. the files the HTML test downloads, one per rater. With --key, files of another test (test_id)
    and sections that are not the key's are errors.

    \b
    "Real" is the positive class. Per rater, with TP = real images called real, FN = real called fake,
    FP = generated called real, TN = generated called fake:
      precision = TP / (TP + FP)   recall = TP / (TP + FN)   accuracy = (TP + TN) / all
      FPR (false positive rate) = FP / (FP + TN): share of generated images called real
      FNR (false negative rate) = FN / (TP + FN): share of real images called fake
    Mean (SD) over raters use the sample SD; a rate with a zero denominator (precision of a rater who called
    nothing real) is shown as n/a and left out of the mean.
    """
    from medgan_core.turing.analysis import analyze as run_analysis
    from medgan_core.turing.responses import TuringDataError

    fids = _parse_fids(fid_values)
    try:
        results = run_analysis(list(responses), key=key, fids=fids or None, alpha=alpha, seed=seed)
    except (TuringDataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(results.to_json() if as_json else results.format_text())
    if figures_dir:
        from medgan_core.turing.figures import save_figures

        for path in save_figures(results, figures_dir):
            click.echo(f"wrote {path}", err=as_json)
