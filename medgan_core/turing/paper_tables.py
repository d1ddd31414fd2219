"""The paper's Turing-test numbers (Woodland et al. 2022, Tables 1 and 2), labelled as the paper's.

These are the published figures, restated from ../shared/PAPER.md, for tests and for the book's chapter 6; they
are not results of this project. `table2_confusion_counts` recovers each clinician's whole confusion counts
(out of 50 real and 50 generated images) by searching every count that reproduces all five published
percentages, and `table2_responses` turns those counts back into per-image responses that `analyze` can read.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd

# Table 1: multi-model test, 5 participants, 20 real + 20 generated images per section.
# experiment -> FID of the model shown, FPR mean (SD) %, FNR mean (SD) %  (the paper's numbers)
PAPER_TABLE1 = pd.DataFrame(
    {
        "experiment": ["1 baseline", "2 pretrained", "3 augmented", "4 pretrained + augmented"],
        "fid": [10.43, 7.78, 7.15, 5.06],
        "fpr_mean": [29, 34, 49, 55],
        "fpr_sd": [27, 19, 11, 9],
        "fnr_mean": [32, 32, 34, 41],
        "fnr_sd": [21, 18, 18, 11],
    }
).set_index("experiment")
PAPER_TABLE1_N_RATERS = 5
PAPER_TABLE1_PEARSON_FID_FPR = -0.91  # reported at 90% confidence

# Table 2: clinician test, 7 clinicians, 50 real + 50 generated images; percent, rounded to whole numbers.
PAPER_TABLE2 = pd.DataFrame(
    {
        "clinician": [1, 2, 3, 4, 5, 6, 7],
        "precision": [80, 76, 56, 79, 58, 54, 59],
        "recall": [86, 44, 80, 62, 98, 88, 48],
        "accuracy": [82, 65, 58, 73, 64, 56, 57],
        "fpr": [22, 14, 64, 16, 70, 76, 34],
        "fnr": [14, 56, 20, 38, 2, 12, 52],
    }
).set_index("clinician")
PAPER_TABLE2_MEAN = {"precision": 66, "recall": 72, "accuracy": 65, "fpr": 42, "fnr": 28}
PAPER_TABLE2_SD = {"precision": 12, "recall": 21, "accuracy": 10, "fpr": 27, "fnr": 21}  # sample SD (n - 1)
PAPER_TABLE2_N_REAL = 50
PAPER_TABLE2_N_GENERATED = 50
PAPER_TABLE2_PEARSON_FPR_FNR = -0.71  # reported at 90% confidence
PAPER_LIKERT = {"real": (3.99, 1.00), "generated": (3.23, 1.21)}  # mean (SD), 1 = fake .. 5 = real
PAPER_ALPHA_FID = 0.05
PAPER_ALPHA_TURING = 0.10


def round_half_up(value: Fraction) -> int:
    """Round an exact fraction to the nearest integer, halves up (how a percentage like 12.5 reads as 13)."""
    return math.floor(value + Fraction(1, 2))


def percent_cells(tp: int, fp: int, n_real: int, n_generated: int) -> dict[str, int]:
    """Whole-percent precision, recall, accuracy, FPR, FNR of a rater with `tp` real and `fp` generated images
    called real, computed exactly with fractions."""
    fn, tn = n_real - tp, n_generated - fp
    cells = {
        "precision": Fraction(tp, tp + fp) if tp + fp else None,
        "recall": Fraction(tp, n_real),
        "accuracy": Fraction(tp + tn, n_real + n_generated),
        "fpr": Fraction(fp, n_generated),
        "fnr": Fraction(fn, n_real),
    }
    return {name: (round_half_up(100 * value) if value is not None else -1) for name, value in cells.items()}


def table2_confusion_counts(
    table: pd.DataFrame = PAPER_TABLE2, n_real: int = PAPER_TABLE2_N_REAL, n_generated: int = PAPER_TABLE2_N_GENERATED
) -> pd.DataFrame:
    """Whole confusion counts reproducing every percentage of `table` (default: the paper's Table 2).

    Searches all (TP, FP) in [0, n_real] x [0, n_generated] for each row; exactly one must match all five cells.
    Returns a DataFrame indexed like `table` with columns tp, fn, fp, tn.
    """
    rows = {}
    for rater, published in table.iterrows():
        target = {name: int(published[name]) for name in ("precision", "recall", "accuracy", "fpr", "fnr")}
        # recall and FNR depend on TP alone, FPR on FP alone: narrow each first, then check all five cells
        tps = [
            tp
            for tp in range(n_real + 1)
            if all(percent_cells(tp, 0, n_real, n_generated)[c] == target[c] for c in ("recall", "fnr"))
        ]
        fps = [
            fp for fp in range(n_generated + 1) if percent_cells(0, fp, n_real, n_generated)["fpr"] == target["fpr"]
        ]
        matches = [(tp, fp) for tp in tps for fp in fps if percent_cells(tp, fp, n_real, n_generated) == target]
        if len(matches) != 1:
            raise ValueError(f"row {rater}: {len(matches)} confusion tables reproduce {target}, expected exactly one")
        tp, fp = matches[0]
        rows[rater] = {"tp": tp, "fn": n_real - tp, "fp": fp, "tn": n_generated - fp}
    counts = pd.DataFrame.from_dict(rows, orient="index")
    counts.index.name = table.index.name
    return counts


def responses_from_counts(counts: pd.DataFrame, n_real: int, n_generated: int, section: str = "all") -> pd.DataFrame:
    """Per-image responses (rater, image, answer, truth, section) realising each rater's confusion counts.

    counts: index rater; columns tp, fp (fn and tn follow from n_real, n_generated). Images are 'real-001' ..
    and 'generated-001' ..; each rater calls the first `tp` real and the first `fp` generated images real.
    """
    records = []
    for rater, row in counts.iterrows():
        for i in range(n_real):
            answer = "real" if i < row["tp"] else "fake"
            records.append((str(rater), f"real-{i + 1:03d}", answer, "real", section))
        for i in range(n_generated):
            answer = "real" if i < row["fp"] else "fake"
            records.append((str(rater), f"generated-{i + 1:03d}", answer, "generated", section))
    return pd.DataFrame.from_records(records, columns=["rater", "image", "answer", "truth", "section"])


def table2_responses() -> pd.DataFrame:
    """Responses of the paper's seven clinicians rebuilt from Table 2's confusion counts (no Likert scores)."""
    counts = table2_confusion_counts()
    return responses_from_counts(counts, PAPER_TABLE2_N_REAL, PAPER_TABLE2_N_GENERATED)
