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
