"""Chapter 2 (training): the run the chapter shows (a recorded run, or one trained anew), and its figures.

`chapter_run(params)` reads the record (book/records/training/...) unless `run_training` is set, in which case it
trains with the chapter's parameters through `medgan_core.book.demo.train` (the trainer's own `launch`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medgan_core.book.collapse import DIVERSITY_METRIC, collapse_table
from medgan_core.book.runs import RunDirectory

# chapter parameter -> `medgan train` option (the rest of the training parameters keep their names)
TRAIN_OPTION_NAMES = dict(map_layers="map")
TRAIN_PARAMETERS = ("gpus", "batch", "gamma", "kimg", "tick", "snap", "seed", "mirror", "aug", "augpipe", "target",
                    "ada_kimg", "resume", "cbase", "cmax", "map_layers", "beta1", "fp32")  # fmt: skip
OFFLINE_METRIC = "frd256"


def training_metrics(metrics: str, inception=None) -> str:
    """'auto' -> the metrics that can run here: FRD when its extra is installed, the collapse metric (div128)
    always, FID/KID when Inception is given."""
    if metrics != "auto":
        return metrics
    from medgan_core.book.demo import fid_available
    from medgan_core.evaluation.frd import frd_available

    if inception:
        os.environ["MEDGAN_INCEPTION"] = str(inception)
    chosen = ([OFFLINE_METRIC] if frd_available()[0] else []) + [DIVERSITY_METRIC]
    chosen += ["fid1k_full", "kid1k_full"] if fid_available("fid1k_full", inception)[0] else []
    return ",".join(chosen) or "none"


def training_set_of(params: dict) -> Path:
    """The chapter's training zip: `data` itself when it is a zip, else its slices packaged at `resolution`."""
    from medgan_core.book.demo import training_set

    data = str(params["data"])
    if not data.endswith(".zip") and not Path(data).is_dir() and Path(data).name == "mni-brain":
        from medgan_core.book.demo import prepare_slices

        prepare_slices("mni-brain", data)  # the data chapter writes it; made here when this chapter runs alone
    return Path(data) if data.endswith(".zip") else training_set(data, params["work"], int(params["resolution"]))


def chapter_run(params: dict) -> RunDirectory:
    """The recorded run at `record`, or (with `run_training`) a run trained into `run_dir` with the parameters."""
    if not params.get("run_training"):
        record = Path(params["record"])
        if not (record / "training_options.json").is_file():
            raise FileNotFoundError(
                f"{record}: no recorded run; make it with `bash book/records/make_records.sh training` "
                "or run the chapter with `-p run_training True`"
            )
        return RunDirectory.open(record)
    from medgan_core.book.demo import train

    options = {TRAIN_OPTION_NAMES.get(k, k): params[k] for k in TRAIN_PARAMETERS if k in params}
    options.update(mirror=bool(options.get("mirror")), fp32=bool(options.get("fp32")), workers=0)
    options["metrics"] = training_metrics(params.get("metrics", "auto"), params.get("inception"))
    return RunDirectory.open(train(params["run_dir"], training_set_of(params), **options))


def run_summary(run: RunDirectory) -> pd.DataFrame:
    """The run in one column: resolution, network width, kimg trained, wall time, speed, final augment p."""
    options, stats = run.options(), run.stats()
    config = run.config()
    g_kwargs = config.get("G_kwargs", {})
    last = stats.iloc[-1] if len(stats) else pd.Series(dtype=float)
    return pd.DataFrame(
        [
            {
                "resolution": g_kwargs.get("img_resolution"),
                "channel base / max": f"{g_kwargs.get('channel_base')} / {g_kwargs.get('channel_max')}",
                "batch": config.get("batch_size"),
                "kimg trained": round(float(stats.index[-1]), 1) if len(stats) else 0.0,
                "wall time (min)": round(float(last.get("Timing/total_sec", np.nan)) / 60, 1),
                "sec/kimg (last tick)": round(float(last.get("Timing/sec_per_kimg", np.nan)), 1),
                "augment p (end)": round(float(last.get("Progress/augment", 0.0)), 3),
                "metrics": options.get("metrics"),
            }
        ],
        index=[run.name],
    ).T


def loss_figure(run: RunDirectory, target: float = 0.6):
    """Losses (mean +- SD over each tick) and ADA's p and r_t over training."""
    stats = run.stats()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, label, color in [("Loss/G/loss", "generator", "tab:blue"), ("Loss/D/loss", "discriminator", "tab:red")]:
        if name in stats:
            mean, sd = stats[name], stats[f"{name}/std"]
            axes[0].plot(stats.index, mean, color=color, label=label)
            axes[0].fill_between(stats.index, mean - sd, mean + sd, color=color, alpha=0.2)
    axes[0].set(xlabel="kimg", ylabel="loss (mean +- SD over the tick)", title="Losses")
    axes[0].legend()
    axes[1].plot(stats.index, stats.get("Progress/augment", pd.Series(0.0, index=stats.index)), label="augment p")
    if "Progress/ada_rt" in stats:
        axes[1].plot(stats.index, stats["Progress/ada_rt"], label="r_t (sign of D's real logits)")
        axes[1].axhline(target, color="gray", linestyle="--", label=f"target {target}")
    axes[1].set(xlabel="kimg", title="ADA")
    axes[1].legend(fontsize=8)
    return fig


def grids_figure(run: RunDirectory):
    """Real images, the generator before training and at the end, side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, which, title in zip(axes, ("reals", "init", "latest"), ("real", "before training", "end of training")):
        ax.imshow(run.grid(which).squeeze(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return fig


def progress_figure(run: RunDirectory, columns: int = 4, per_row: int = 8):
    """The top-left `columns` x `columns` images of every snapshot's grid, `per_row` snapshots a row: how the
    samples change with kimg (rows keep each panel large enough to read at page width)."""
    from PIL import Image

    grids = sorted(run.path.glob("fakes[0-9]*.png"))
    if not grids:
        return None
    side = run.config().get("G_kwargs", {}).get("img_resolution") or 64
    rows = -(-len(grids) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(1.45 * per_row, 1.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path in zip(axes.flat, grids):
        with Image.open(path) as image:
            ax.imshow(np.asarray(image)[: columns * side, : columns * side].squeeze(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{int(path.stem[5:])} kimg", fontsize=9)  # fakes<kimg>.png, NVIDIA's integer kimg
    fig.tight_layout()
    return fig


def _distance_metrics(run: RunDirectory) -> pd.DataFrame:
    """The run's metric values without the collapse metric (div128 has its own figure and words)."""
    table = run.metrics()
    return table[table["metric"] != DIVERSITY_METRIC]


def _frd_label(name: str) -> str:
    """What an FRD curve measures: frd-score's value, or the same over the features that vary over the reals."""
    if name.endswith("_varying"):
        return "FRD, varying features (log d_F^2)"
    return "FRD, frd-score v1 (log d_F^2; not FID)"


def metric_figure(run: RunDirectory):
    """Every distance metric the run recorded over kimg (one panel each), or None when no metric ran."""
    table = _distance_metrics(run)
    if table.empty:
        return None
    names = list(dict.fromkeys(table["metric"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = table[table["metric"] == name].sort_values("kimg")
        ax.plot(rows["kimg"], rows["value"], marker="o")
        label = _frd_label(name) if name.startswith("frd") else name
        ax.set(xlabel="kimg", ylabel=label, title=f"{name} at each snapshot")
    return fig


def metric_table(run: RunDirectory) -> pd.DataFrame:
    """Metric values per snapshot, one column per metric, index kimg; "-" where a metric was not computed."""
    table = run.metrics()
    if table.empty:
        return table
    pivot = table.pivot_table(index="kimg", columns="metric", values="value").round(3)
    return pivot.astype(object).where(pivot.notna(), "-")


def metric_trend(run: RunDirectory) -> str:
    """One line per distance metric: its value at the first snapshot, its lowest (and where), its value at the
    last."""
    table = _distance_metrics(run)
    lines = []
    for name in dict.fromkeys(table["metric"]):
        rows = table[table["metric"] == name].sort_values("kimg")
        best = rows.loc[rows["value"].idxmin()]  # every metric the chapters track here is lower-is-better
        first, last = rows.iloc[0], rows.iloc[-1]
        lines.append(f"{name}: {first.value:.2f} at {first.kimg:g} kimg, lowest {best.value:.2f} at "
                     f"{best.kimg:g} kimg, {last.value:.2f} at the last snapshot ({last.kimg:g} kimg)")  # fmt: skip
    return "\n".join(lines)


def memorisation_report(run: RunDirectory, reals: np.ndarray, n_eval: int, seed: int = 0):
    """Copies and diversity of `n_eval` images of the run's final generator against the training images.

    Returns (summary table, distance histogram figure, closest-pairs figure, MS-SSIM table).
    """
    from medgan_core.checkpoint import load_network
    from medgan_core.evaluation import diversity_report, find_memorized
    from medgan_core.evaluation.memorization import closest_pairs_grid, plot_distances
    from medgan_core.generate import generate_images

    generated = generate_images(load_network(run.generator_file())["G_ema"], range(n_eval))
    with warnings.catch_warnings():  # the chapter explains the leave-one-out calibration this warns about
        warnings.filterwarnings("ignore", message="no held-out images given")
        memo = find_memorized(generated, reals, fpr=0.01, size=reals.shape[1])
    summary = pd.DataFrame({"value": pd.Series(memo.summary())}).map(
        lambda v: round(v, 4) if isinstance(v, float) else v
    )
    pairs = closest_pairs_grid(memo, generated, reals, num_pairs=6)
    pairs_fig, ax = plt.subplots(figsize=(3, 6))
    ax.imshow(pairs.squeeze(), cmap="gray", vmin=0, vmax=255)
    ax.set_title("closest pairs: generated | nearest training", fontsize=9)
    ax.axis("off")
    div = diversity_report(generated, reals, num_pairs=200, seed=seed)
    diversity = pd.DataFrame(
        {"mean MS-SSIM": [div.generated_mean, div.real_mean], "SD": [div.generated_std, div.real_std]},
        index=["generated (this run)", "real (training set)"],
    ).round(3)
    return summary, plot_distances(memo), pairs_fig, diversity


def frd_explained(run: RunDirectory, params: dict, num_gen: int = 64):
    """FRD of the run's final generator split by feature (see `medgan_core.evaluation.frd.frd_breakdown`):
    `num_gen` generated images (seeds 0..) against the training slices at the run's resolution."""
    from medgan_core.checkpoint import load_network
    from medgan_core.evaluation.frd import frd_breakdown
    from medgan_core.generate import generate_images
    from medgan_core.utils.io import save_png

    training_set_of(params)  # writes the downscaled real slices next to the zip
    real_dir = Path(params["work"]) / f"{Path(str(params['data'])).name}-{int(params['resolution'])}"
    if not real_dir.is_dir():  # the data were a zip or already at the resolution
        real_dir = Path(params["data"])
    out = Path(params["work"]) / f"frd-generated-{run.name}"
    out.mkdir(parents=True, exist_ok=True)
    G = load_network(run.generator_file())["G_ema"]
    for seed, image in enumerate(generate_images(G, range(num_gen), noise_mode="const")):
        save_png(image[..., 0] if image.shape[-1] == 1 else image, out / f"{seed:04d}.png")
    summary, table = frd_breakdown(real_dir, out)
    return summary.to_frame(), table


def collapse_figure(run: RunDirectory):
    """FRD (when recorded) and the collapse metric at every snapshot, snapshots in collapse shaded: the spread of
    the generated images against the reals' and their coverage of the reals, each with its collapse threshold.
    None when the run has no collapse metric."""
    from medgan_core.evaluation.collapse import COLLAPSE_COVERAGE, COLLAPSE_SPREAD

    table = collapse_table(run.path)
    if table.empty:
        return None
    distances = _distance_metrics(run)
    frd = distances[distances["metric"].str.startswith("frd")].sort_values("kimg")
    panels = [("spread", "spread, generated / real", COLLAPSE_SPREAD),
              ("coverage", "mode coverage of the reals", COLLAPSE_COVERAGE)]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels) + (not frd.empty), figsize=(9.6, 3.5), squeeze=False)
    axes = list(axes[0])
    for name in dict.fromkeys(frd["metric"]):  # frd-score's value and, where recorded, the varying features'
        rows = frd[frd["metric"] == name]
        axes[0].plot(rows["kimg"], rows["value"], marker="o", label=_frd_label(name).split(" (")[0])
    if not frd.empty:
        axes[0].set(xlabel="kimg", ylabel="log d_F^2 (not FID)", title="FRD (lower = closer)")
        axes[0].legend(fontsize=8)
    for ax, (column, label, threshold) in zip(axes[-len(panels) :], panels):
        ax.plot(table["kimg"], table[column], marker="o", color="tab:green", label=f"div128 {column}")
        ax.axhline(threshold, color="gray", linestyle="--", label=f"collapse below {threshold}")
        ax.set(xlabel="kimg", ylabel=label, title=label)
        ax.legend(fontsize=8)
    step = float(np.diff(table["kimg"]).min()) if len(table) > 1 else 1.0
    for ax in axes:
        for kimg in table.loc[table["collapsed"], "kimg"]:
            ax.axvspan(kimg - step / 2, kimg + step / 2, color="tab:red", alpha=0.12, linewidth=0)
    fig.suptitle("Mode collapse over training (red: snapshots in collapse; higher spread and coverage = more varied)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def final_verdict(run: RunDirectory, reals: np.ndarray, n_eval: int = 128):
    """The collapse report (`medgan_core.evaluation.collapse`) of `n_eval` images of the run's final generator
    (seeds 0.., constant noise, as the div128 metric draws them) against the real images (uint8 [N, H, W, C])."""
    from medgan_core.checkpoint import load_network
    from medgan_core.evaluation.collapse import collapse_report
    from medgan_core.generate import generate_images

    generated = generate_images(load_network(run.generator_file())["G_ema"], range(n_eval), noise_mode="const")
    return collapse_report(generated, reals)


def paper_scale_command(resolution: int = 512, batch: int = 32, gpus: int = 8) -> str:
    """The chapter's papermill command for a paper-scale run, gamma from NVIDIA's formula 0.0002 * res^2 / batch."""
    gamma = 0.0002 * resolution**2 / batch
    return (f"-p run_training True -p data data/liver-{resolution}.zip -p resolution {resolution} -p gpus {gpus} "
            f"-p batch {batch} -p kimg 25000 -p cbase 32768 -p cmax 512 -p map_layers 8 -p beta1 0.9 -p tick 4 "
            f"-p snap 50 -p gamma {gamma:g}")  # fmt: skip


def chapter_summary(run: RunDirectory, report, departures: pd.DataFrame, memorised: float) -> str:
    """The chapter's summary in Markdown bullets, every statement from the run's numbers: what was trained and how
    it departs from the paper, the collapse history and the final verdict, what the checks mean for it."""
    from medgan_core.book.collapse import collapse_sentence

    resolution = run.config().get("G_kwargs", {}).get("img_resolution")
    stats = run.stats()
    kimg = float(stats.index[-1]) if len(stats) else 0.0
    differing = ", ".join(f"{name} ({row.this_run} here, {row.paper} in the paper)"
                          for name, row in departures.drop(index="data", errors="ignore").iterrows())  # fmt: skip
    lines = [
        f"`medgan train` trained this generator for {kimg:g} kimg at {resolution}x{resolution}. It departs from the "
        f"paper's settings in: {differing or 'nothing'}.",
        collapse_sentence(run.path),
        f"Final generator: {report.describe()}.",
    ]
    if report.state == "unlike the reals":
        lines.append(
            f"The memorisation check flags {memorised:.0%} of its images, but a generator whose images stand near "
            "few real slices has not learned the data yet: FRD and the Turing demo describe an unfinished model."
        )
    elif report.collapsed:
        lines.append(
            f"The memorisation check flags {memorised:.0%} of its images, but a collapsed generator draws nothing "
            "like most training slices, so that says little about copying; FRD and the Turing demo describe the "
            "collapse, not StyleGAN2-ADA on this data."
        )
    else:
        lines.append(
            f"The memorisation check flags {memorised:.0%} of its images against the 1% expected of fresh real "
            "images; FRD is a distance between radiomic feature distributions, read beside the grids."
        )
    return "\n".join(f"- {line}" for line in lines)
