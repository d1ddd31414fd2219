"""Analysis outputs beyond the paper's tables: Likert summaries and tests, section comparisons, JSON, figures."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from matplotlib import font_manager
from matplotlib import pyplot as plt
from PIL import Image

from medgan_core.turing import analyze, compare_sections
from medgan_core.turing.figures import drawable_labels, plot_rater_rates, save_figures


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


def two_raters_one_calls_nothing_real() -> pd.DataFrame:
    """ann: TP 3, FN 2, FP 2, TN 3 (precision 3/5); bob calls every image fake (precision 0/0)."""
    truths = ["real"] * 5 + ["generated"] * 5
    ann = ["real", "real", "real", "fake", "fake", "real", "real", "fake", "fake", "fake"]
    records = [("ann", f"i{k}", answer, truth) for k, (answer, truth) in enumerate(zip(ann, truths))]
    records += [("bob", f"i{k}", "fake", truth) for k, truth in enumerate(truths)]
    return pd.DataFrame.from_records(records, columns=["rater", "image", "answer", "truth"])


def test_undefined_rates_are_named_and_never_printed_as_nan():
    results = analyze(two_raters_one_calls_nothing_real())
    assert math.isnan(results.per_rater.at["bob", "precision"])
    assert results.summary.at["precision", "n"] == 1 and results.summary.at["recall", "n"] == 2
    assert results.summary.at["precision", "mean"] == pytest.approx(0.6)  # ann's alone
    text = results.format_text()
    assert "nan" not in text.lower()
    assert "precision 60 (SD n/a) [1 of 2]" in text
    assert "precision is undefined for 'bob' (who called no image real): left out of its mean and SD" in text
    bob_row = next(line for line in text.splitlines() if line.startswith("bob"))
    assert "n/a" in bob_row
    single = analyze(two_raters_one_calls_nothing_real().query("rater == 'ann'")).format_text()
    assert "nan" not in single.lower() and "Mean (SD) over 1 rater: precision 60 (SD n/a)" in single
    assert "at least 2 raters" in single
    report = json.loads(results.to_json())
    assert report["summary"]["precision"]["n"] == 1 and report["summary"]["precision"]["sd"] is None
    assert report["definitions"]["fpr"].startswith("FP / (FP + TN)") and report["positive_class"] == "real"


def _missing_glyph_warnings(draw) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_figures_draw_non_ascii_rater_names_without_boxes():
    names = {"r0": "张伟", "r1": "章伟", "r2": "Zoë"}  # two Chinese names that transliterate alike
    frame = likert_responses(n_raters=3)
    frame["rater"] = frame.rater.map(names)
    results = analyze(frame)

    def plain():  # what the figures did before: the names as they are, in the default font
        fig, ax = plt.subplots()
        ax.set_xticks([0, 1], ["张伟", "章伟"])
        fig.canvas.draw()
        plt.close(fig)

    labels, families = drawable_labels(list(names.values()))
    if families is None:  # no installed font has the glyphs (as on the project's machines): ASCII labels
        assert _missing_glyph_warnings(plain)  # the environment does report boxes
        assert labels == {"张伟": "ZhangWei", "章伟": "ZhangWei (2)", "Zoë": "Zoë"}
    fig = plot_rater_rates(results)
    assert not _missing_glyph_warnings(fig.canvas.draw)
    assert sorted(t.get_text() for t in fig.axes[0].get_xticklabels()) == sorted(labels.values())
    plt.close(fig)


def _has_glyphs(font_file: str, text: str) -> bool:
    """Whether the font file (read by fontTools, not by the code under test) maps every character of `text`."""
    from fontTools.ttLib import TTFont

    try:
        with TTFont(font_file, fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except Exception:  # noqa: BLE001 - a font fontTools cannot read does not count as having them
        return False
    return all(ord(c) in cmap for c in text)


def test_an_installed_font_with_the_glyphs_draws_the_names_as_typed(tmp_path):
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def glyph(box: bool):
        pen = TTGlyphPen(None)
        if box:
            pen.moveTo((100, 0))
            for point in ((100, 700), (900, 700), (900, 0)):
                pen.lineTo(point)
            pen.closePath()
        return pen.glyph()

    order = [".notdef", "space", "zhang", "wei"]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(order)
    builder.setupCharacterMap({32: "space", ord("张"): "zhang", ord("伟"): "wei"})
    builder.setupGlyf({name: glyph(name in ("zhang", "wei")) for name in order})
    builder.setupHorizontalMetrics({name: (1000, 0) for name in order})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Medgan Test Han", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    path = tmp_path / "test_han.ttf"
    builder.save(str(path))
    before = list(font_manager.fontManager.ttflist)
    font_manager.fontManager.addfont(str(path))
    try:
        labels, families = drawable_labels(["张伟", "ann"])
        # the names as typed, in a fallback family that has their glyphs: ours, or one the machine has (Debian's
        # fonts-droid-fallback, Noto CJK, ...) that comes first in matplotlib's list
        assert labels == {"张伟": "张伟", "ann": "ann"} and families is not None
        chosen = [entry.fname for entry in font_manager.fontManager.ttflist if entry.name == families[-1]]
        assert any(_has_glyphs(fname, "张伟") for fname in chosen), (families, chosen)
        frame = two_raters_one_calls_nothing_real().replace({"rater": {"bob": "张伟"}})
        fig = plot_rater_rates(analyze(frame))
        assert not _missing_glyph_warnings(fig.canvas.draw)
        assert "张伟" in [t.get_text() for t in fig.axes[0].get_xticklabels()]
        plt.close(fig)
    finally:
        font_manager.fontManager.ttflist[:] = before
        font_manager.fontManager._findfont_cached.cache_clear()


def test_fid_vs_fpr_keeps_the_sd_bars_inside_the_rate_range():
    """SD bars of rates near 0 or 100 percent are cut at the ends of the scale, and the title names the r."""
    from medgan_core.turing.figures import plot_fid_vs_fpr

    frame = likert_responses(n_raters=7)
    frame["section"] = frame.image.str[-1].map(lambda d: f"exp{int(d) % 4 + 1}")
    results = analyze(frame, fids={"exp1": 10.7, "exp2": 12.1, "exp3": 8.4, "exp4": 9.0})
    sections = results.sections
    assert ((100 * (sections.fpr_mean + sections.fpr_sd)) > 100).any()  # the fixture's bars would leave the scale
    fig = plot_fid_vs_fpr(results)
    ends = np.concatenate([segment[:, 1] for segment in fig.axes[0].collections[0].get_segments()])
    assert ends.max() <= 100 and ends.min() >= 0
    title = fig.axes[0].get_title()
    corr = results.correlations.get("fid_vs_fpr")
    assert (f"r = {corr.r:.2f}" in title) if corr is not None and np.isfinite(corr.r) else "no correlation" in title
