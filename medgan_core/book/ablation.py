"""Chapter 3 (ablation): the four experiments x seeds, read from the record (book/records/ablation) or trained anew,
and the tables and figures the chapter shows: our FRD (and FID when Inception weights were given) beside the
paper's FID, permutation tests against the baseline, generator-loss curves with SD bands.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medgan_core.book.paper import EXPERIMENTS, PAPER_ABLATION
from medgan_core.book.runs import RunDirectory, find_runs

_RUN_NAME = re.compile(r"^exp(\d+)-seed(\d+)$")
SCORES = {"frd256": "FRD", "frd64": "FRD", "fid1k_full": "FID (1k)"}  # recorded metric -> label (FRD is not FID)


def experiment_of(name: str) -> int:
    """'exp3-seed1' -> 3 (the names `medgan_core.book.demo.run_name` and make_records.sh give)."""
    match = _RUN_NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not an ablation run name (exp<k>-seed<s>)")
    return int(match.group(1))


def train_ablation(params: dict, log=print) -> Path:
    """Train the experiments x seeds of the chapter's parameters into `runs_root` (finished runs are kept)."""
    from medgan_core.book.demo import (
        export_for_transfer,
        phantom_key,
        prepare_slices,
        run_name,
        train,
        write_ct_phantom,
    )
    from medgan_core.book.display import int_list
    from medgan_core.book.paper import experiment_options
    from medgan_core.book.training import TRAIN_OPTION_NAMES, training_metrics, training_set_of

    root = Path(params["runs_root"])
    names = ("batch", "gamma", "kimg", "tick", "snap", "cbase", "cmax", "map_layers", "beta1", "fp32")
    common = {TRAIN_OPTION_NAMES.get(k, k): params[k] for k in names}
    common.update(fp32=bool(common["fp32"]), workers=0)
    metrics = training_metrics(params.get("metrics", "auto"), params.get("inception"))
    experiments, seeds = int_list(params["experiments"]), int_list(params["seeds"])
    dataset = training_set_of(params)
    source = params.get("transfer_source")
    if source is None and any(EXPERIMENTS[k]["transfer"] for k in experiments):
        source_data = Path(params["source_data"])
        if not source_data.is_dir():  # the data chapter writes it; made here when the chapter runs alone
            phantom = write_ct_phantom(Path(params["work"]) / "ct-phantom")
            prepare_slices("liver-ct", source_data, src=phantom, key_file=phantom_key(phantom))
        source_set = training_set_of(dict(params, data=str(source_data)))
        options = dict(common, kimg=params["source_kimg"], seed=0, aug="noaug", metrics="none")
        source_run = RunDirectory.open(train(root / "transfer-source", source_set, **options))
        source = str(
            export_for_transfer(source_run.latest_snapshot(), source_run.path / "source-networks.safetensors")
        )
    plan = [(k, s) for k in experiments for s in seeds]
    for k, s in plan:
        train(root / run_name(k, s), dataset, seed=s, metrics=metrics, **common,
              **experiment_options(k, source, params.get("ada_kimg"), params.get("augpipe")))  # fmt: skip
    log(f"trained {len(plan)} runs ({len(experiments)} experiments x {len(seeds)} seeds) into {root}")
    return root


def ablation_runs(params: dict) -> dict[str, RunDirectory]:
    """The runs the chapter shows: trained anew with `run_training`, else the record at `record`."""
    root = train_ablation(params) if params.get("run_training") else Path(params["record"])
    runs = {run.name: run for run in find_runs(root, "exp*-seed*", with_snapshot=False)}
    if not runs:
        raise FileNotFoundError(
            f"{root}: no ablation runs; make the record with `bash book/records/make_records.sh ablation` or run "
            "the chapter with `-p run_training True`"
        )
    return runs


def per_run_scores(runs: dict[str, RunDirectory]) -> pd.DataFrame:
    """One row per run: experiment and the best (lowest) value of each recorded metric (FRD, FID)."""
    rows = []
    for name, run in sorted(runs.items()):
        table = run.metrics()
        row = dict(run=name, experiment=EXPERIMENTS[experiment_of(name)]["name"])
        for label in dict.fromkeys(SCORES.values()):
            names = [metric for metric, text in SCORES.items() if text == label]
            values = table.loc[table["metric"].isin(names), "value"]
            row[label] = float(values.min()) if len(values) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def ablation_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The paper's FID per experiment beside our scores as 'mean (SD)' and the number of runs."""
    table = PAPER_ABLATION.copy()
    table["paper FID mean (SD)"] = [f"{m:.2f} ({s:.2f})" for m, s in zip(table.paper_fid_mean, table.paper_fid_sd)]
    table = table[["paper FID mean (SD)"]]
    for label in dict.fromkeys(SCORES.values()):
        if label in scores and scores[label].notna().any():
            grouped = scores.groupby("experiment")[label].agg(["mean", "std", "count"])
            column = f"ours: {label} mean (SD)"
            table[column] = [
                f"{grouped.loc[e, 'mean']:.2f} ({grouped.loc[e, 'std']:.2f})" if e in grouped.index else "not run"
                for e in table.index
            ]
            table["our runs"] = [int(grouped.loc[e, "count"]) if e in grouped.index else 0 for e in table.index]
    return table


def permutation_tests(scores: pd.DataFrame, label: str = "FRD") -> pd.DataFrame:
    """Each experiment against the baseline on `label` (exact permutation test of the difference in means)."""
    from medgan_core.turing import permutation_test_means

    baseline = scores.loc[scores.experiment == EXPERIMENTS[1]["name"], label].dropna()
    rows = []
    for k in (2, 3, 4):
        other = scores.loc[scores.experiment == EXPERIMENTS[k]["name"], label].dropna()
        if len(baseline) and len(other) and len(baseline) + len(other) >= 3:
            t = permutation_test_means(list(other), list(baseline), paired=False, alpha=0.05)
            rows.append(
                {
                    "comparison": f"{EXPERIMENTS[k]['name']} vs 1 baseline",
                    f"difference in mean {label}": round(t.statistic, 3),
                    "p value": round(t.p_value, 3),
                    "arrangements": t.n_arrangements,
                    "significant at 0.05": t.significant,
                }
            )
    return pd.DataFrame(rows).set_index("comparison") if rows else pd.DataFrame()


def loss_curves(runs: dict[str, RunDirectory]) -> pd.DataFrame:
    """Generator loss per tick of every run, long format: kimg, G_loss, experiment, run."""
    frames = []
    for name, run in runs.items():
        stats = run.stats()
        if "Loss/G/loss" in stats:
            experiment = EXPERIMENTS[experiment_of(name)]["name"]
            frames.append(pd.DataFrame({"kimg": stats.index.round(2), "G_loss": stats["Loss/G/loss"].values,
                                        "experiment": experiment, "run": name}))  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["kimg", "G_loss", "experiment"])


def loss_figure(curves: pd.DataFrame):
    """Mean generator loss per experiment over kimg, with a band of +- 1 SD over the runs."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.lineplot(data=curves, x="kimg", y="G_loss", hue="experiment", errorbar="sd", ax=ax)
    ax.set(ylabel="generator loss (band: SD over runs)", title="Generator loss per experiment (this book's runs)")
    return fig


def augmentation_test(curves: pd.DataFrame) -> str:
    """Mean G loss of augmented minus not augmented runs, with an exact permutation test, as one sentence."""
    from medgan_core.turing import permutation_test_means

    per_run = curves.groupby(["run", "experiment"]).G_loss.mean().reset_index()
    augmented = per_run[per_run.experiment.str.contains("augmented")].G_loss
    plain = per_run[~per_run.experiment.str.contains("augmented")].G_loss
    if len(augmented) + len(plain) < 3 or not len(augmented) or not len(plain):
        return "too few runs for a permutation test of the augmentation"
    t = permutation_test_means(list(augmented), list(plain), paired=False, alpha=0.05)
    return (f"mean G loss, augmented minus not augmented runs: {t.statistic:.3f} (permutation p = {t.p_value:.3f}, "
            f"{t.n_arrangements} arrangements)")  # fmt: skip


def final_grids_figure(runs: dict[str, RunDirectory], seed: int | None = None, tiles: int = 4):
    """The top-left tiles x tiles images of each experiment's final grid (run seed `seed`, default the lowest)."""
    if seed is None:
        seed = min(int(_RUN_NAME.match(name).group(2)) for name in runs)
    chosen = [(k, runs.get(f"exp{k}-seed{seed}")) for k in EXPERIMENTS]
    chosen = [(k, run) for k, run in chosen if run is not None]
    fig, axes = plt.subplots(1, max(1, len(chosen)), figsize=(2.6 * max(1, len(chosen)), 2.9), squeeze=False)
    for ax, (k, run) in zip(axes[0], chosen):
        side = run.config().get("G_kwargs", {}).get("img_resolution") or 32
        ax.imshow(run.grid("latest")[: tiles * side, : tiles * side].squeeze(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(EXPERIMENTS[k]["name"], fontsize=9)
        ax.axis("off")
    return fig
