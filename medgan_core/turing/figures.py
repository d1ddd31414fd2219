"""Figures of a Turing-test analysis (seaborn on matplotlib's Agg backend): per-rater rates, Likert
distributions, and FID vs mean FPR across sections. Each function returns a matplotlib Figure;
`save_figures` writes the applicable ones as PNGs without metadata.

Rater and section names are drawn as typed when an installed font has their glyphs (matplotlib falls back to that
font); otherwise they are transliterated to ASCII with anyascii (张伟 -> ZhangWei, distinct names kept distinct),
so a figure never shows empty boxes for a name."""

from __future__ import annotations

import functools
import io
import os
from contextlib import nullcontext
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed, same pixels everywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from anyascii import anyascii  # noqa: E402
from matplotlib import font_manager, ft2font  # noqa: E402

from medgan_core.turing.analysis import RATES, TuringResults  # noqa: E402
from medgan_core.utils.io import atomic_write  # noqa: E402

_RATE_LABELS = {"precision": "precision", "recall": "recall", "accuracy": "accuracy", "fpr": "FPR", "fnr": "FNR"}


@functools.cache
def _charset(font_path: str) -> frozenset[int]:
    """The code points a font file has glyphs for."""
    return frozenset(ft2font.FT2Font(font_path).get_charmap())


def drawable_labels(names: list[str]) -> tuple[dict[str, str], list[str] | None]:
    """How to draw `names` without missing glyphs: ({name: label}, font families or None for the default).

    Names the default font can draw stay as they are. For the others, an installed font that has all their
    glyphs is added as a fallback family; without one they are transliterated to ASCII (anyascii), with a
    ' (2)', ' (3)' suffix where two names would give the same label.
    """
    family = list(plt.rcParams["font.family"])
    default = _charset(font_manager.findfont(font_manager.FontProperties(family=family)))
    missing = {ord(c) for name in names for c in name if not c.isspace()} - default
    if not missing:
        return {name: name for name in names}, None
    for entry in font_manager.fontManager.ttflist:
        if entry.name.startswith("Last Resort"):
            continue  # it "covers" every code point with placeholder boxes: the very thing to avoid
        if missing <= _charset(entry.fname):
            return {name: name for name in names}, [*family, entry.name]
    drawable = [name for name in names if {ord(c) for c in name if not c.isspace()} <= default]
    labels = {name: name for name in drawable}
    for name in names:
        if name in labels:
            continue
        label = base = anyascii(name).strip() or "?"
        k = 2
        while label in labels.values():
            label, k = f"{base} ({k})", k + 1
        labels[name] = label
    return {name: labels[name] for name in names}, None


def _fonts(families: list[str] | None):
    """A context in which new text uses `families` (with matplotlib's per-glyph fallback), or a no-op."""
    return plt.rc_context({"font.family": families}) if families else nullcontext()


def plot_rater_rates(results: TuringResults) -> plt.Figure:
    """Grouped bars: each rater's precision, recall, accuracy, FPR and FNR in percent (real = positive)."""
    labels, families = drawable_labels([str(rater) for rater in results.per_rater.index])
    long = (
        (100 * results.per_rater[list(RATES)])
        .rename(columns=_RATE_LABELS)
        .rename(index=lambda rater: labels[str(rater)])
        .reset_index()
        .melt(id_vars="rater", var_name="measure", value_name="percent")
    )
    with _fonts(families):
        return _draw_rater_rates(long, len(results.per_rater))


def _draw_rater_rates(long, n_raters: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * n_raters + 2), 3.8))
    sns.barplot(data=long, x="rater", y="percent", hue="measure", ax=ax, palette="colorblind")
    ax.set_ylim(0, 105)  # a rate of 100 stays visible as a bar below the frame
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("percent")
    ax.set_title("Per-rater measures (real = positive class)")
    ax.legend(ncol=5, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    fig.tight_layout()
    return fig


def plot_likert(results: TuringResults) -> plt.Figure:
    """Distribution of Likert scores (1 = fake .. 5 = real) for real and generated images, all raters pooled."""
    rated = results.responses.dropna(subset=["likert"]).copy()
    if rated.empty:
        raise ValueError("no Likert scores in these responses")
    rated["score"] = rated["likert"].astype(int)
    counts = rated.groupby(["truth", "score"]).size().rename("n").reset_index()
    counts["share"] = counts["n"] / counts.groupby("truth")["n"].transform("sum")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.barplot(
        data=counts,
        x="score",
        y="share",
        hue="truth",
        hue_order=["real", "generated"],
        ax=ax,
        order=[1, 2, 3, 4, 5],
        palette="colorblind",
    )
    for truth, ci in results.likert.items():
        ax.plot([], [], " ", label=f"{truth}: mean {ci.mean:.2f} (SD {ci.sd:.2f})")
    ax.set_ylim(0, 1.4 * counts["share"].max())  # room for the legend above the bars
    ax.set_xlabel("Likert score (1 = fake, 5 = real)")
    ax.set_ylabel("share of ratings")
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def plot_fid_vs_fpr(results: TuringResults) -> plt.Figure:
    """Mean FPR over raters (with SD bars) against each section's FID, with the Pearson r in the title."""
    if "fid" not in results.sections:
        raise ValueError("no FIDs given for the sections")
    table = results.sections.dropna(subset=["fid"]).reset_index()
    labels, families = drawable_labels([str(section) for section in table["section"]])
    with _fonts(families):
        return _draw_fid_vs_fpr(results, table, labels)


def _draw_fid_vs_fpr(results: TuringResults, table, labels: dict[str, str]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    mean, sd = 100 * table["fpr_mean"], 100 * table["fpr_sd"].fillna(0)
    below, above = mean - (mean - sd).clip(lower=0), (mean + sd).clip(upper=100) - mean  # a rate stays in 0-100
    ax.errorbar(table["fid"], mean, yerr=[below, above], fmt="none", ecolor="0.6")
    sns.regplot(data=table.assign(fpr=100 * table["fpr_mean"]), x="fid", y="fpr", ci=None, ax=ax, line_kws={"lw": 1})
    for _, row in table.iterrows():
        ax.annotate(
            labels[str(row["section"])],
            (row["fid"], 100 * row["fpr_mean"]),
            fontsize="small",
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("FID")
    ax.set_ylabel("mean FPR over raters (%)\nbars: SD, cut at 0 and 100")
    ax.set_ylim(-3, 103)
    corr = results.correlations.get("fid_vs_fpr")
    if corr is not None and np.isfinite(corr.r):
        ax.set_title(f"FID vs FPR: Pearson r = {corr.r:.2f}, p = {corr.p_value:.3f}")
    else:
        ax.set_title("FID vs FPR (no correlation: fewer than 3 sections or a constant rate)")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write `fig` as a PNG atomically, without the 'Software' text chunk, and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())
    return path


def save_figures(results: TuringResults, out_dir: str | os.PathLike) -> list[Path]:
    """Write rater_rates.png, likert.png (with Likert scores) and fid_vs_fpr.png (with FIDs) into `out_dir`."""
    out_dir = Path(out_dir)
    written = [save_figure(plot_rater_rates(results), out_dir / "rater_rates.png")]
    if results.likert:
        written.append(save_figure(plot_likert(results), out_dir / "likert.png"))
    if "fid" in results.sections and results.sections["fid"].notna().any():
        written.append(save_figure(plot_fid_vs_fpr(results), out_dir / "fid_vs_fpr.png"))
    return written


__all__ = ["drawable_labels", "plot_rater_rates", "plot_likert", "plot_fid_vs_fpr", "save_figure", "save_figures"]
