"""The paper's Tables 1 and 2 recovered through our analysis: whole counts -> every published cell."""

from __future__ import annotations

import math

import pytest

from medgan_core.turing import analyze
from medgan_core.turing.paper_tables import (
    PAPER_TABLE1,
    PAPER_TABLE1_PEARSON_FID_FPR,
    PAPER_TABLE2,
    PAPER_TABLE2_MEAN,
    PAPER_TABLE2_PEARSON_FPR_FNR,
    PAPER_TABLE2_SD,
    table2_confusion_counts,
    table2_responses,
)
from medgan_core.turing.stats import pearson

RATES = ["precision", "recall", "accuracy", "fpr", "fnr"]


def half_up(value: float) -> int:
    return math.floor(value + 0.5 + 1e-9)


def test_table2_counts_are_unique_and_match_the_papers_clinician_1():
    counts = table2_confusion_counts()
    assert len(counts) == 7
    # the paper spells out clinician 1: 43 real called real, 7 real called fake, 11 generated called real, 39 fake
    assert counts.loc[1].to_dict() == {"tp": 43, "fn": 7, "fp": 11, "tn": 39}
    assert ((counts.tp + counts.fn) == 50).all() and ((counts.fp + counts.tn) == 50).all()


def test_rebuilt_responses_reproduce_every_cell_of_table2():
    results = analyze(table2_responses())
    per_rater = results.per_rater.copy()
    per_rater.index = per_rater.index.astype(int)
    assert list(per_rater.index) == list(PAPER_TABLE2.index)
    for clinician, published in PAPER_TABLE2.iterrows():
        for rate in RATES:
            assert half_up(100 * per_rater.at[clinician, rate]) == published[rate], (clinician, rate)


def test_rebuilt_responses_reproduce_table2_mean_and_sd():
    results = analyze(table2_responses())
    for rate in RATES:
        assert half_up(100 * results.summary.at[rate, "mean"]) == PAPER_TABLE2_MEAN[rate], rate
        assert half_up(100 * results.summary.at[rate, "sd"]) == PAPER_TABLE2_SD[rate], rate


def test_table2_pearson_fpr_fnr_is_minus_071_at_90_percent():
    results = analyze(table2_responses(), alpha=0.10)
    corr = results.correlations["fpr_vs_fnr"]
    assert round(corr.r, 2) == PAPER_TABLE2_PEARSON_FPR_FNR
    assert corr.p_value < 0.10 and corr.significant
    assert corr.ci_high < 0  # the 90% interval excludes zero
    # and the paper's overall share of generated images called real
    assert half_up(100 * results.sections["fpr_mean"].iloc[0]) == 42


def test_table1_fid_vs_mean_fpr_is_minus_091_with_p_below_010():
    corr = pearson(PAPER_TABLE1["fid"], PAPER_TABLE1["fpr_mean"], confidence=0.90, alpha=0.10)
    assert round(corr.r, 2) == PAPER_TABLE1_PEARSON_FID_FPR
    assert corr.p_value < 0.10 and corr.significant
    assert corr.p_value > 0.05  # only at the paper's 90% level, not at 95%


def test_analysis_fid_correlation_over_sections():
    """Sections whose mean FPRs are Table 1's, built from whole counts (5 raters x 20 generated = 100 images)."""
    import pandas as pd

    records = []
    for k, (experiment, row) in enumerate(PAPER_TABLE1.iterrows()):
        fakes_called_real = round(row["fpr_mean"])  # out of 5 x 20 = 100 generated answers
        for rater in range(5):
            for i in range(20):
                called = rater * 20 + i < fakes_called_real
                records.append((f"r{rater}", f"s{k}-g{i}", "real" if called else "fake", "generated", experiment))
                records.append((f"r{rater}", f"s{k}-r{i}", "real", "real", experiment))
    responses = pd.DataFrame.from_records(records, columns=["rater", "image", "answer", "truth", "section"])
    results = analyze(responses, fids=PAPER_TABLE1["fid"].to_dict())
    assert results.sections.loc[PAPER_TABLE1.index, "fpr_mean"].tolist() == pytest.approx(
        (PAPER_TABLE1["fpr_mean"] / 100).tolist()
    )
    corr = results.correlations["fid_vs_fpr"]
    assert round(corr.r, 2) == -0.91 and corr.p_value < 0.10
