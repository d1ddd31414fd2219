"""The paper's FID tables (Woodland et al. 2022), restated from PAPER.md for display beside this book's results.

Every number here is the paper's, not ours; tables built from them carry "paper" in their column names. The
Turing-test tables (Table 1 and Table 2) live in `medgan_core.turing.paper_tables`.
"""

from __future__ import annotations

import pandas as pd

# Liver CT ablation: mean (SD) of the best FID over 5 runs per experiment.
PAPER_ABLATION = pd.DataFrame(
    {
        "experiment": [
            "1 baseline",
            "2 pretrained",
            "3 augmented",
            "4 pretrained + augmented",
            "1 with +143,345 images",
        ],
        "paper_fid_mean": [10.70, 7.62, 7.51, 5.22, 8.45],
        "paper_fid_sd": [0.72, 0.35, 0.89, 0.17, 0.20],
    }
).set_index("experiment")
PAPER_ABLATION_RUNS = 5

# Experiment 4 on the public datasets: best FID, mean (SD) over 5 runs, and the previous record (model).
PAPER_PUBLIC = pd.DataFrame(
    {
        "dataset": ["SLIVER07", "ChestX-ray14", "ACDC", "MSD brain tumour"],
        "recipe": ["sliver07", "chestxray14", "acdc", "msd-brain"],
        "paper_best_fid": [10.78, 3.52, 21.17, 5.39],
        "paper_mean_fid": [11.99, 3.63, 21.43, 5.53],
        "paper_sd_fid": [1.57, 0.07, 0.32, 0.01],
        "previous_record": [29.06, 8.02, 24.74, float("nan")],
        "previous_record_model": ["StyleGAN", "Progressive GAN", "StyleGAN", "none (first result)"],
        "resolution": [512, 1024, 512, 256],
        "images": [4159, 112120, 1902, 103030],
    }
).set_index("dataset")
PAPER_PUBLIC_NOTE = "SLIVER07's SD is garbled in the paper's source; 1.57 is the legible reading."

# The ablation's four experiments: which switches each one sets (paper, Training section).
EXPERIMENTS = {
    1: dict(name="1 baseline", transfer=False, augment=False),
    2: dict(name="2 pretrained", transfer=True, augment=False),
    3: dict(name="3 augmented", transfer=False, augment=True),
    4: dict(name="4 pretrained + augmented", transfer=True, augment=True),
}


def experiment_options(
    number: int, transfer_source: str | None, ada_kimg: float | None = None, augpipe: str | None = None
) -> dict:
    """`medgan train` options of experiment `number`: --resume for transfer, --mirror and --aug ada for augment
    (with --ada-kimg and --augpipe when given; None keeps NVIDIA's ADA speed and its bgc pipeline)."""
    spec = EXPERIMENTS[number]
    if spec["transfer"] and transfer_source is None:
        raise ValueError(f"experiment {spec['name']} needs a network to transfer from")
    return dict(
        resume=transfer_source if spec["transfer"] else None,
        mirror=spec["augment"],
        aug="ada" if spec["augment"] else "noaug",
        ada_kimg=ada_kimg if spec["augment"] else None,
        augpipe=augpipe if spec["augment"] else None,
    )


def public_records_table() -> pd.DataFrame:
    """The paper's public-dataset records for the page: best and mean (SD) FID, the previous record with its model,
    the change, resolution and images; every number the paper's, '-' where the paper has none."""
    rows = {}
    for dataset, row in PAPER_PUBLIC.iterrows():
        previous = row["previous_record"]
        has_previous = not pd.isna(previous)
        rows[dataset] = {
            "best FID (paper)": f"{row['paper_best_fid']:.2f}",
            "mean (SD) FID (paper)": f"{row['paper_mean_fid']:.2f} ({row['paper_sd_fid']:.2f})",
            "previous record (paper)": f"{previous:.2f} ({row['previous_record_model']})" if has_previous else "-",
            "best vs previous": f"{row['paper_best_fid'] / previous - 1:+.0%}" if has_previous else "first result",
            "resolution": f"{row['resolution']}",
            "images": f"{row['images']:,}",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("dataset")


# The paper's training settings (PAPER.md, Training): NVIDIA's StyleGAN2 configuration with its defaults, except
# Adam beta1 0.9 and fp32; 6,250 ticks of 4 kimg on eight A100s; FID at every 50-tick snapshot. Keys are
# `medgan train` options (NVIDIA's spellings); where the paper only says "the default", NVIDIA's default is given.
PAPER_TRAINING = {
    "data": "liver CT slices (in-house), 512x512",
    "cfg": "stylegan2",
    "gpus": 8,
    "kimg": 25000.0,
    "tick": 4.0,
    "snap": 50,
    "cbase": 32768,
    "cmax": 512,
    "map": 8,
    "beta1": 0.9,
    "fp32": True,
    "aug": "ada (experiments 3, 4)",
    "augpipe": "bgc",
    "ada_kimg": 500.0,
    "target": 0.6,
    "metrics": "fid50k_full",
}


def training_departures(cli_options: dict, data: str) -> pd.DataFrame:
    """The run's `medgan train` options beside the paper's, one row for every setting where they differ (the
    first row: `data`, what the run trained on). `cli_options`: training_options.json's "cli_options"."""
    rows = [dict(setting="data", paper=PAPER_TRAINING["data"], this_run=data)]
    for key, paper_value in PAPER_TRAINING.items():
        if key == "data":
            continue
        ours = cli_options.get(key)
        if key == "aug" and ours in ("ada", "noaug", None):
            continue  # the paper's experiments 3 and 4 use ADA, 1 and 2 none
        if ours != paper_value and not (isinstance(ours, float | int) and ours == paper_value):
            rows.append(dict(setting=key, paper=_text(paper_value), this_run=_text(ours)))
    return pd.DataFrame(rows).set_index("setting")


# The ablation's settings in the paper (PAPER.md, Training and Evaluation), for "what differs from the paper".
PAPER_ABLATION_SETTINGS = {
    "data": "in-house liver CT, 10,600 slices",
    "resolution": "512",
    "length (kimg)": "25000",
    "runs per experiment": "5",
    "metric": "FID (Inception-v3), best over training",
    "transfer source": "NVIDIA's FFHQ StyleGAN2 weights",
    "network (cbase, cmax, mapping layers)": "32768, 512, 8",
    "Adam beta1": "0.9",
    "precision": "fp32",
    "batch": "not stated (NVIDIA's default)",
    "R1 gamma": "not stated (NVIDIA's default)",
}


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
