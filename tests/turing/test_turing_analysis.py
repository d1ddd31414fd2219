"""Analysis outputs beyond the paper's tables: Likert summaries and tests, section comparisons, JSON, figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from PIL import Image

from medgan_core.turing import analyze, compare_sections
from medgan_core.turing.figures import save_figures


def likert_responses(n_raters: int = 6, n_images: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    records = []
    for r in range(n_raters):
        for i in range(n_images):
            for truth, loc in (("real", 4.0), ("generated", 3.0)):
                score = int(np.clip(np.rint(rng.normal(loc, 1.0)), 1, 5))
                answer = "real" if score >= 3 else "fake"
                section = "exp1" if i % 2 else "exp2"
                records.append((f"r{r}", f"{truth}-{i}", answer, score, truth, section))
    return pd.DataFrame.from_records(records, columns=["rater", "image", "answer", "likert", "truth", "section"])


def test_likert_summary_ci_and_paired_test():
    frame = likert_responses()
    results = analyze(frame, alpha=0.10)
    for truth in ("real", "generated"):
        scores = frame.loc[frame.truth == truth, "likert"].to_numpy(float)
        ci = results.likert[truth]
        low, high = scipy.stats.t.interval(0.95, len(scores) - 1, loc=scores.mean(), scale=scipy.stats.sem(scores))
        assert (ci.mean, ci.sd, ci.n) == pytest.approx((scores.mean(), scores.std(ddof=1), 60))
        assert (ci.ci_low, ci.ci_high) == pytest.approx((low, high))
    test = results.tests["likert_real_vs_generated"]
    means = frame.groupby(["rater", "truth"]).likert.mean().unstack()
    reference = scipy.stats.permutation_test(
        (means["real"].to_numpy(), means["generated"].to_numpy()),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf,
    )
    assert test.exact and test.paired and test.alpha == 0.10
    assert test.p_value == pytest.approx(reference.pvalue)
    assert test.statistic == pytest.approx(reference.statistic)


def test_sections_and_compare_sections():
    frame = likert_responses()
    results = analyze(frame, fids={"exp1": 7.0, "exp2": 5.0})
    assert set(results.sections.index) == {"exp1", "exp2"}
    assert (results.sections[["n_real", "n_generated"]] == 5).all().all()
    exp1 = frame[frame.section == "exp1"]
    fpr = exp1[exp1.truth == "generated"].groupby("rater").answer.apply(lambda a: (a == "real").mean())
    assert results.sections.at["exp1", "fpr_mean"] == pytest.approx(fpr.mean())
    assert results.sections.at["exp1", "fpr_sd"] == pytest.approx(fpr.std(ddof=1))
    assert "fid_vs_fpr" not in results.correlations  # two sections: no correlation
    test = compare_sections(results, ["exp1"], ["exp2"], rate="fpr")
    a = results.per_rater_section["fpr"].xs("exp1", level="section")
    b = results.per_rater_section["fpr"].xs("exp2", level="section")
    assert test.statistic == pytest.approx((a - b).mean())
    with pytest.raises(ValueError, match="unknown section"):
        compare_sections(results, ["exp9"], ["exp2"])
    with pytest.raises(ValueError, match="unknown section"):
        analyze(frame, fids={"exp9": 1.0})


def test_json_rates_are_fractions_and_nan_is_null():
    frame = likert_responses(n_raters=3)
    frame.loc[frame.truth == "generated", "answer"] = "fake"  # nobody calls a generated image real
    frame.loc[(frame.rater == "r0") & (frame.truth == "real"), "answer"] = "fake"  # r0 calls nothing real
    report = json.loads(analyze(frame).to_json())
    r0 = next(row for row in report["per_rater"] if row["rater"] == "r0")
    assert r0["precision"] is None  # 0 / 0
    for row in report["per_rater"]:
        for rate in ("recall", "accuracy", "fpr", "fnr"):
            assert 0.0 <= row[rate] <= 1.0
    assert report["rates_are"] == "fractions in [0, 1]"
    assert "fpr_vs_fnr" not in report["correlations"]  # FPR constant at 0: r undefined, not reported


def test_figures_are_written_without_metadata(tmp_path):
    frame = likert_responses()
    frame["section"] = frame.image.str[-1].map(lambda d: f"s{int(d) % 3}")
    results = analyze(frame, fids={"s0": 9.0, "s1": 7.0, "s2": 5.0})
    paths = save_figures(results, tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["fid_vs_fpr.png", "likert.png", "rater_rates.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.size[0] > 300 and "Software" not in image.info
    assert math.isfinite(results.correlations["fid_vs_fpr"].r)
