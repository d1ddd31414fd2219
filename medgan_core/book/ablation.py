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
SCORES = {
    "frd256": "FRD",
    "frd64": "FRD",
    "frd256_varying": "FRD, varying features",
    "frd64_varying": "FRD, varying features",
    "fid1k_full": "FID (1k)",
}  # metric -> label (FRD is not FID)
FINAL = {"spread": "div128 spread, final", "coverage": "div128 coverage, final"}  # the collapse metric's last values


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
        # as make_records.sh trains it: with ADA and x-flips (experiment 3's options), past its own collapse
        augment = experiment_options(3, None, params.get("ada_kimg"), params.get("augpipe"))
        options = dict(common, kimg=params["source_kimg"], seed=0, metrics="div128", **augment)
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
    """One row per run: experiment, the best (lowest) value of each recorded distance (FRD, FID; the paper reports
    each run's best FID) and the collapse metric's spread and coverage at the last snapshot (NaN where not run)."""
    from medgan_core.book.collapse import collapse_table

    rows = []
    for name, run in sorted(runs.items()):
        table = run.metrics()
        row = dict(run=name, experiment=EXPERIMENTS[experiment_of(name)]["name"])
        for label in dict.fromkeys(SCORES.values()):
            names = [metric for metric, text in SCORES.items() if text == label]
            values = table.loc[table["metric"].isin(names), "value"]
            row[label] = float(values.min()) if len(values) else np.nan
        collapse = collapse_table(run.path)
        for column, label in FINAL.items():
            row[label] = float(collapse[column].iloc[-1]) if len(collapse) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def ablation_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The paper's FID per experiment beside our scores as 'mean (SD)' and the number of runs."""
    table = PAPER_ABLATION.copy()
    table["paper FID mean (SD)"] = [f"{m:.2f} ({s:.2f})" for m, s in zip(table.paper_fid_mean, table.paper_fid_sd)]
    table = table[["paper FID mean (SD)"]]
    for label in [*dict.fromkeys(SCORES.values()), *FINAL.values()]:
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


def _seed_of(name: str) -> int:
    return int(_RUN_NAME.match(name).group(2))


def differences_from_paper(runs: dict[str, RunDirectory]) -> pd.DataFrame:
    """Every ablation setting in which these runs differ from the paper's, from the runs' own options (the
    lowest-seed run of each experiment; transfer source from a transfer run) against `PAPER_ABLATION_SETTINGS`."""
    from medgan_core.book.paper import PAPER_ABLATION_SETTINGS

    first = runs[min(runs, key=lambda n: (experiment_of(n), _seed_of(n)))]
    options, config = first.options(), first.config()
    transfer = [run for name, run in sorted(runs.items()) if EXPERIMENTS[experiment_of(name)]["transfer"]]
    source = Path(str(transfer[0].options().get("resume"))).name if transfer else "no transfer run"
    per_experiment = pd.Series([experiment_of(n) for n in runs]).value_counts()
    metric = str(options.get("metrics"))
    ours = {
        "data": Path(str(options.get("data"))).name,
        "resolution": str(config.get("G_kwargs", {}).get("img_resolution", "?")),
        "length (kimg)": f"{float(options.get('kimg')):g}",
        "runs per experiment": "/".join(str(v) for v in sorted(set(per_experiment))),
        "metric": f"{metric} ({'FRD, not FID' if metric.startswith('frd') else 'as recorded'}), best over training",
        "transfer source": source,
        "network (cbase, cmax, mapping layers)": ", ".join(str(options.get(k)) for k in ("cbase", "cmax", "map")),
        "Adam beta1": f"{options.get('beta1')}",
        "precision": "fp32" if options.get("fp32") else "mixed",
        "batch": str(options.get("batch")),
        "R1 gamma": f"{options.get('gamma')}",
    }
    rows = [(k, ours[k], paper) for k, paper in PAPER_ABLATION_SETTINGS.items() if ours[k] != paper]
    return pd.DataFrame(rows, columns=["setting", "ours", "paper"]).set_index("setting")


def _direction(before: float, after: float, lower_is_better: bool = True) -> str:
    if np.isclose(before, after):
        return "leaves it unchanged"
    better = (after < before) == lower_is_better
    return "helps" if better else "hurts"


def ordering_comparison(scores: pd.DataFrame, label: str = "FRD") -> str:
    """Markdown: for transfer, augmentation and both, what the paper's FID says and what our `label` says, with
    our permutation p-value, and whether the two agree. Words follow the numbers."""
    means = scores.groupby("experiment")[label].mean()
    tests = permutation_tests(scores, label)
    lines = []
    agree = 0
    for k in (2, 3, 4):
        name, base = EXPERIMENTS[k]["name"], EXPERIMENTS[1]["name"]
        paper_before, paper_after = (
            PAPER_ABLATION.loc[base, "paper_fid_mean"],
            PAPER_ABLATION.loc[name, "paper_fid_mean"],
        )
        paper_word = _direction(paper_before, paper_after)
        if name not in means.index or base not in means.index or pd.isna(means.get(name)):
            ran = any(experiment_of(n) == k for n in scores.index)
            lines.append(f"- **{name}**: the paper's FID {paper_before:.2f} -> {paper_after:.2f} ({paper_word}); "
                         f"{f'our runs recorded no {label}' if ran else 'not run here'}.")  # fmt: skip
            continue
        ours_word = _direction(means[base], means[name])
        row = f"{name} vs 1 baseline"
        p = f"p = {tests.loc[row, 'p value']:.3f}" if row in tests.index else "no test"
        agree += ours_word == paper_word
        lines.append(
            f"- **{name}**: the paper's FID {paper_before:.2f} -> {paper_after:.2f} ({paper_word}); our {label} "
            f"{means[base]:.2f} -> {means[name]:.2f} ({ours_word}, permutation {p})."
        )
    compared = sum(1 for line in lines if f"our {label} " in line)
    if not compared:
        return "\n".join(lines) + f"\n\nNo experiment has {label} values beside a baseline's: no comparison here."
    significant = int(tests["significant at 0.05"].sum()) if len(tests) else 0
    verdict = (
        "Our runs order the experiments as the paper does"
        if agree == compared
        else f"Our runs point the same way as the paper in {agree} of the {compared} comparisons and the other way in "
        "the rest"
    )
    verb = "is" if significant == 1 else "are"
    verdict += (
        f"; {significant} of our {len(tests)} differences {verb} significant at 0.05: runs this short, on other "
        "data, neither confirm nor contradict the paper."
        if significant < len(tests) or not len(tests)
        else "; every one of our differences is significant at 0.05."
    )
    return "\n".join(lines) + "\n\n" + verdict


def loss_comparison(curves: pd.DataFrame) -> str:
    """Markdown: the paper's loss finding (augmentation lowered and steadied the G loss) against our runs."""
    from medgan_core.turing import permutation_test_means

    per_run = curves.groupby(["run", "experiment"]).G_loss.agg(["mean", "std"]).reset_index()
    augmented = per_run[per_run.experiment.str.contains("augmented")]
    plain = per_run[~per_run.experiment.str.contains("augmented")]
    paper = "The paper: augmentation significantly lowered the generator loss and steadied training."
    if len(augmented) + len(plain) < 3 or not len(augmented) or not len(plain):
        return f"{paper} Too few runs here to test it."
    t = permutation_test_means(list(augmented["mean"]), list(plain["mean"]), paired=False, alpha=0.05)
    lower = t.statistic < 0 and t.significant
    steadier = augmented["std"].mean() < plain["std"].mean()
    ours = (
        f"Ours: mean G loss of augmented minus not augmented runs {t.statistic:+.3f} (permutation p = "
        f"{t.p_value:.3f}), {'significantly lower' if lower else 'no significant lowering'}; its SD within a run "
        f"{augmented['std'].mean():.3f} against {plain['std'].mean():.3f} "
        f"({'steadier' if steadier else 'not steadier'})."
    )
    agrees = lower and steadier
    return f"{paper} {ours} {'Our runs show the same effect.' if agrees else 'Our runs do not show that effect.'}"


def grid_tiles(run: RunDirectory, side: int | None = None) -> np.ndarray:
    """The images of a run's final grid (fakesNNNNNN.png) cut into tiles: uint8 [N, side, side, 1]."""
    side = side or run.config().get("G_kwargs", {}).get("img_resolution") or 32
    grid = run.grid("latest")
    grid = grid[..., 0] if grid.ndim == 3 else grid
    rows, columns = grid.shape[0] // side, grid.shape[1] // side
    tiles = grid[: rows * side, : columns * side].reshape(rows, side, columns, side).swapaxes(1, 2)
    return np.ascontiguousarray(tiles.reshape(rows * columns, side, side, 1))


def final_collapse(runs: dict[str, RunDirectory], real_images: np.ndarray) -> pd.DataFrame:
    """Mode-collapse report of every run's final grid against the real images (uint8 [N, H, W, 1] at the runs'
    resolution): one row per run with spread, coverage, MS-SSIM and the state."""
    from medgan_core.evaluation.collapse import collapse_report

    rows = {}
    for name, run in sorted(runs.items()):
        report = collapse_report(grid_tiles(run), real_images)
        rows[name] = dict(experiment=EXPERIMENTS[experiment_of(name)]["name"], report=report, **report.summary())
    columns = ["experiment", "spread_ratio", "coverage", "msssim", "msssim_real", "state", "report"]
    return pd.DataFrame.from_dict(rows, orient="index")[columns].rename_axis("run")


def real_images_at(data, work, resolution: int, max_images: int = 1000) -> np.ndarray:
    """The real slices (a folder of PNGs) at the runs' resolution, uint8 [N, H, W, 1]."""
    from medgan_core.book.demo import downscale_folder
    from medgan_core.evaluation.images import load_images

    folder = downscale_folder(data, Path(work) / f"reals-{resolution}", resolution)
    images, _ = load_images(folder, max_images=max_images)
    return images


def collapse_boxes(table: pd.DataFrame, consequences: str, show: bool = True) -> list[str]:
    """One box per collapse state among the runs (`final_collapse`'s table), decided by the numbers: the runs in
    that state named and counted, the numbers of its median-spread run (`collapse_box`)."""
    from medgan_core.book.collapse import collapse_box

    boxes = []
    for _state, group in table.groupby("state", sort=False):
        example = group.sort_values("spread_ratio").index[len(group) // 2]
        names = ", ".join(group.index)
        subject = (
            f"The final generator of {len(group)} of the {len(table)} runs ({names}; numbers of run {example})"
            if len(group) > 1
            else f"The final generator of run {example} (1 of {len(table)} runs)"
        )
        boxes.append(collapse_box(group.loc[example, "report"], subject, consequences, show=show))
    return boxes


def resolution_of(runs: dict[str, RunDirectory]) -> int:
    """The runs' image resolution (from the first run's options)."""
    run = runs[min(runs)]
    return int(run.config().get("G_kwargs", {}).get("img_resolution") or 32)


def length_sentence(runs: dict[str, RunDirectory]) -> str:
    """'Our runs: 10 kimg each at 32 x 32 pixels, 3 per experiment.' from the runs' own options."""
    lengths = sorted({float(run.options().get("kimg")) for run in runs.values()})
    counts = sorted(set(pd.Series([experiment_of(n) for n in runs]).value_counts()))
    side = resolution_of(runs)
    return (f"Our runs: {' or '.join(f'{k:g}' for k in lengths)} kimg each at {side} x {side} pixels, "
            f"{'/'.join(map(str, counts))} per experiment.")  # fmt: skip
