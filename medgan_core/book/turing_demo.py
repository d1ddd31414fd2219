"""Chapters 5 and 6 (Turing tests): demo tests built from this book's generators, and the figures beside them.

The tests themselves are `medgan_core.turing.build_turing_test`; this module picks the generators, writes their
images and the real images at the same size, and draws the first pages of a test with its answers.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medgan_core.book.paper import EXPERIMENTS
from medgan_core.book.runs import RunDirectory, find_runs


def frd_beside_table1(runs: dict[str, RunDirectory]) -> pd.DataFrame:
    """The paper's Table 1 FID of each section's model beside our FRD mean (SD) of the same experiment."""
    from medgan_core.book.ablation import per_run_scores
    from medgan_core.turing import paper_tables as paper

    table = paper.PAPER_TABLE1[["fid"]].rename(columns={"fid": "paper FID (Table 1)"})
    scores = per_run_scores(runs) if runs else pd.DataFrame(columns=["experiment", "FRD"])
    grouped = scores.groupby("experiment")["FRD"].agg(["mean", "std", "count"])
    table["ours: FRD mean (SD)"] = [
        f"{grouped.loc[e, 'mean']:.2f} ({grouped.loc[e, 'std']:.2f})" if e in grouped.index else "not run"
        for e in table.index
    ]
    table["our runs"] = [int(grouped.loc[e, "count"]) if e in grouped.index else 0 for e in table.index]
    return table


def _real_folder(real_dir, out: Path, side: int) -> Path:
    from medgan_core.book.demo import downscale_folder

    return downscale_folder(real_dir, out / f"real-{side}", side)


def _side(folder: Path) -> int:
    return plt.imread(next(iter(sorted(folder.glob("*.png"))))).shape[0]


def multi_model_test(runs_root, seed: int, real_dir, out, n_real: int, n_generated: int):
    """The paper's four-section test from the runs exp<k>-seed<seed> that hold weights; None when none do.

    Returns (test, figure of each section's first images, counts per section and truth).
    """
    from medgan_core.book.demo import generate_folder, run_name
    from medgan_core.turing import build_turing_test, load_key

    runs = {run.name: run for run in find_runs(runs_root)}
    chosen = [(k, runs[run_name(k, seed)]) for k in EXPERIMENTS if run_name(k, seed) in runs]
    if not chosen:
        return None
    out = Path(out)
    folders = []
    for k, run in chosen:  # 3x the images needed: the builder refuses duplicates, which tiny generators make
        folders.append(generate_folder(run.best_snapshot(), out / f"exp{k}", range(1000, 1000 + 3 * n_generated)))
    reals = _real_folder(real_dir, out, _side(folders[0]))
    with contextlib.redirect_stderr(io.StringIO()):  # its per-image progress bar: noise on a static page
        title = "Real or generated? Four sections (medgan demo)"
        test = build_turing_test(reals, folders, out / "test", n_real=n_real, n_generated=n_generated, seed=seed,
                                 title=title, likert=False)  # fmt: skip
    fig, axes = plt.subplots(len(folders), 6, figsize=(7.5, 1.35 * len(folders)), squeeze=False)
    for row, folder in zip(axes, folders):
        for ax, path in zip(row, sorted(folder.glob("*.png"))):
            ax.imshow(plt.imread(path), cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
        row[0].set_title(f"section {folder.name}", fontsize=8, loc="left")
    fig.suptitle("Generated images per experiment (this book's demo models)", fontsize=10)
    counts = load_key(test.key_path).groupby(["section", "truth"]).size().unstack()
    return test, fig, counts


def clinician_test(generator_run, real_dir, out, n_real: int, n_generated: int, seed: int):
    """A one-model test (with Likert ratings) from the final generator of `generator_run` (a run folder).

    Returns (test, table describing it, figure of its first pages with the answers from the key).
    """
    from medgan_core.book.demo import generate_folder
    from medgan_core.turing import build_turing_test

    run = RunDirectory.open(generator_run)
    out = Path(out)
    generated = generate_folder(run.generator_file(), out / f"generated-{run.name}", range(3 * n_generated))
    side = _side(generated)
    reals = _real_folder(real_dir, out, side)
    with contextlib.redirect_stderr(io.StringIO()):  # its per-image progress bar: noise on a static page
        test = build_turing_test(reals, [generated], out / "test", n_real=n_real, n_generated=n_generated,
                                 seed=seed, title="Real or generated? (medgan demo)", likert=True)  # fmt: skip
    key = pd.read_csv(test.key_path)
    about = pd.DataFrame(
        {"value": [run.name, run.generator_file().name, f"{side} x {side}", str(test.html_path), str(test.key_path)]},
        index=["model", "weights", "image size", "test page", "answer key"],
    )
    shown = key.head(8)
    fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown), 2.0), squeeze=False)
    for ax, (_, row) in zip(axes[0], shown.iterrows()):
        folder = reals if row["truth"] == "real" else generated
        ax.imshow(np.asarray(plt.imread(folder / Path(row["source"]).name)), cmap="gray", vmin=0, vmax=1)
        ax.set_title(row["truth"], fontsize=8)
        ax.axis("off")
    fig.suptitle("The first pages of the test, with the answers from the key", fontsize=10)
    return test, pd.concat([about, key.groupby("truth").size().rename("value").to_frame()]), fig


def generator_verdict(generator_run, real_dir, out, n_images: int = 128):
    """The collapse report (`medgan_core.evaluation.collapse`) of a run's final generator: `n_images` images (seeds
    0.., constant noise) against the real slices downscaled to its size, so the chapter's words follow it."""
    from medgan_core.book.training import final_verdict
    from medgan_core.evaluation.images import load_images

    run = RunDirectory.open(generator_run)
    side = run.config().get("G_kwargs", {}).get("img_resolution")
    reals, _ = load_images(_real_folder(real_dir, Path(out), side))
    return final_verdict(run, reals, n_images)


def table1_correlation():
    """Pearson r of the paper's Table 1 FID with mean FPR and FNR (90% level), as a sentence and a figure."""
    from medgan_core.turing import paper_tables as paper
    from medgan_core.turing import pearson

    t1 = paper.PAPER_TABLE1
    fpr = pearson(t1["fid"], t1["fpr_mean"], confidence=0.90, alpha=0.10)
    fnr = pearson(t1["fid"], t1["fnr_mean"], confidence=0.90, alpha=0.10)
    text = (
        f"r(FID, mean FPR) from Table 1: {fpr.r:.2f}, p = {fpr.p_value:.3f}, n = {fpr.n}, 90% CI "
        f"[{fpr.ci_low:.2f}, {fpr.ci_high:.2f}]; the paper reports {paper.PAPER_TABLE1_PEARSON_FID_FPR:.2f}\n"
        f"r(FID, mean FNR) from Table 1: {fnr.r:.2f}, p = {fnr.p_value:.3f}"
    )
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.errorbar(t1["fid"], t1["fpr_mean"], yerr=t1["fpr_sd"], fmt="o", capsize=3, label="FPR mean (SD)")
    ax.errorbar(t1["fid"] + 0.08, t1["fnr_mean"], yerr=t1["fnr_sd"], fmt="s", capsize=3, label="FNR mean (SD)")
    models = ax.secondary_xaxis("top")  # the models named above the plot, clear of the error bars
    models.set_xticks(list(t1["fid"]), labels=[name.split(" ", 1)[1] for name in t1.index])
    models.tick_params(labelsize=8)
    plt.setp(models.get_xticklabels(), rotation=25, ha="left", rotation_mode="anchor")
    ax.set(xlabel="FID of the model shown (paper)", ylabel="percent of images (paper)")
    ax.set_title(f"The paper's Table 1: r(FID, FPR) = {fpr.r:.2f}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return text, fig


def analyse_multi_model_answers(responses, key_path, runs: dict[str, RunDirectory]):
    """Raters' answers to the four-section test: the analysis text, the augmentation test and (with FIDs) the
    FID-FPR figure. FIDs are the runs' best fid1k_full when recorded; FRD is never passed off as FID."""
    from medgan_core.turing import analyze, compare_sections
    from medgan_core.turing.figures import plot_fid_vs_fpr

    fids = {}
    for name, run in runs.items():
        table = run.metrics()
        values = table.loc[table["metric"].str.startswith("fid"), "value"]
        if len(values) and name.endswith("-seed0"):
            fids[name.split("-")[0]] = float(values.min())
    results = analyze(responses, key_path, fids=fids or None)
    lines = [results.format_text()]
    augmented = [s for s in results.sections.index if s in ("exp3", "exp4")]
    plain = [s for s in results.sections.index if s in ("exp1", "exp2")]
    if augmented and plain:
        t = compare_sections(results, augmented, plain, rate="fpr", alternative="greater")
        lines.append(f"augmentation raised the FPR? paired permutation test: difference {t.statistic:.3f}, "
                     f"p = {t.p_value:.3f}")  # fmt: skip
    return "\n".join(lines), (plot_fid_vs_fpr(results) if fids else None)


def likert_intervals(raters: int = 7, images: int = 50) -> pd.DataFrame:
    """The paper's Likert summary per class with the 95% interval of the mean (normal approximation over
    raters x images ratings) and the range mean +- 1.96 SD of individual ratings."""
    import math

    from medgan_core.turing import paper_tables as paper

    rows = {}
    for truth, (mean, sd) in paper.PAPER_LIKERT.items():
        n = raters * images
        half = 1.96 * sd / math.sqrt(n)
        rows[truth] = {
            "paper mean": mean,
            "paper SD": sd,
            f"ratings ({raters} x {images})": n,
            "95% CI of the mean (from the paper's summary)": f"[{mean - half:.2f}, {mean + half:.2f}]",
            "mean +- 1.96 SD (ratings)": f"[{mean - 1.96 * sd:.2f}, {mean + 1.96 * sd:.2f}]",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("images")
