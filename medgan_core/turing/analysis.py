"""Analysis of visual Turing tests with the paper's measures and statistics.

"Real" is the positive class. Per rater: TP = real called real, FN = real called fake, FP = generated called real,
TN = generated called fake; precision = TP / (TP + FP), recall = TP / (TP + FN), accuracy = (TP + TN) / all,
FPR = FP / (FP + TN) (generated images passed as real), FNR = FN / (TP + FN) (real images called fake).
Across raters: mean and sample SD (ddof = 1), as in the paper's Tables 1 and 2. A rate with a zero denominator
(precision of a rater who called no image real) is undefined for that rater: NaN in the tables, null in JSON, left
out of the mean and SD, and named in the text output; the summary counts the raters behind each mean (n). All rates
are fractions in [0, 1]; `format_text` prints them in percent like the paper.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medgan_core.turing.responses import load_responses
from medgan_core.turing.stats import (
    ALPHA_TURING,
    CorrelationResult,
    MeanCI,
    PermutationResult,
    mean_confidence_interval,
    pearson,
    permutation_test_means,
)

RATES = ("precision", "recall", "accuracy", "fpr", "fnr")
COUNTS = ("tp", "fn", "fp", "tn")
DEFINITIONS = {
    "positive_class": "real",
    "precision": "TP / (TP + FP): of the images called real, the share that are real",
    "recall": "TP / (TP + FN): of the real images, the share called real",
    "accuracy": "(TP + TN) / all images",
    "fpr": "FP / (FP + TN): false positive rate, the share of generated images called real",
    "fnr": "FN / (TP + FN): false negative rate, the share of real images called fake",
}
_UNDEFINED_WHEN = {
    "precision": "called no image real",
    "recall": "saw no real image",
    "accuracy": "saw no image",
    "fpr": "saw no generated image",
    "fnr": "saw no real image",
}


@dataclass
class TuringResults:
    """Everything `analyze` computes. Tables are pandas DataFrames; rates are fractions in [0, 1].

    per_rater: index rater; columns tp, fn, fp, tn, precision, recall, accuracy, fpr, fnr, n_images.
    summary: index measure (the rates and counts); columns mean, sd (sample SD over raters), n (raters for whom
        the measure is defined; NaN rates are left out of mean and sd).
    sections: index section; columns n_real, n_generated, fpr_mean, fpr_sd, fnr_mean, fnr_sd (over raters), fid.
    per_rater_section: one row per (rater, section) with the counts and rates of that section.
    likert: truth ('real' | 'generated') -> MeanCI over all ratings pooled (95% t-based CI); empty without Likert.
    correlations: name -> CorrelationResult ('fpr_vs_fnr' across raters; 'fid_vs_fpr' across sections).
    tests: name -> PermutationResult ('likert_real_vs_generated': paired sign-flip over raters' mean scores).
    """

    responses: pd.DataFrame
    per_rater: pd.DataFrame
    summary: pd.DataFrame
    sections: pd.DataFrame
    per_rater_section: pd.DataFrame
    likert: dict[str, MeanCI] = field(default_factory=dict)
    correlations: dict[str, CorrelationResult] = field(default_factory=dict)
    tests: dict[str, PermutationResult] = field(default_factory=dict)
    alpha: float = ALPHA_TURING

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN becomes None); rates stay fractions in [0, 1]."""
        return _clean(
            {
                "positive_class": "real",
                "definitions": DEFINITIONS,
                "rates_are": "fractions in [0, 1]",
                "sd": "sample standard deviation over raters (ddof=1)",
                "alpha": self.alpha,
                "per_rater": self.per_rater.reset_index().to_dict(orient="records"),
                "summary": self.summary.to_dict(orient="index"),
                "sections": self.sections.reset_index().to_dict(orient="records"),
                "likert": {truth: ci.to_dict() for truth, ci in self.likert.items()},
                "correlations": {name: c.to_dict() for name, c in self.correlations.items()},
                "tests": {name: t.to_dict() for name, t in self.tests.items()},
            }
        )

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def format_text(self) -> str:
        """The tables in the paper's layout (percent, mean (SD)), plus the Likert summary and the tests."""
        lines = ["Per rater (percent; real = positive class; n/a = undefined, a zero denominator):"]
        table = self.per_rater[list(COUNTS)].copy()
        for rate in RATES:
            table[rate] = (100 * self.per_rater[rate]).round(1)
        lines.append(table.to_string(na_rep="n/a"))
        n_raters = len(self.per_rater)
        summary = "  ".join(
            f"{rate} {_mean_sd(self.summary.at[rate, 'mean'], self.summary.at[rate, 'sd'])}"
            + (f" [{int(self.summary.at[rate, 'n'])} of {n_raters}]" if self.summary.at[rate, "n"] < n_raters else "")
            for rate in RATES
        )
        lines += ["", f"Mean (SD) over {n_raters} rater{'s' if n_raters != 1 else ''}: {summary}"]
        for rate in RATES:
            undefined = self.per_rater.index[self.per_rater[rate].isna()].tolist()
            if undefined:
                lines.append(
                    f"  {rate} is undefined for {', '.join(map(repr, undefined))} (who {_UNDEFINED_WHEN[rate]}): "
                    "left out of its mean and SD"
                )
        if n_raters < 2:
            lines.append("  SD n/a: a standard deviation over raters needs at least 2 raters")
        if len(self.sections) > 1 or "fid" in self.sections:
            lines += ["", "Per section, mean (SD) over raters (percent):"]
            for section, row in self.sections.iterrows():
                fid = f"FID {row['fid']:.2f}  " if "fid" in row and not pd.isna(row["fid"]) else ""
                lines.append(
                    f"  {section}: {fid}FPR {_mean_sd(row['fpr_mean'], row['fpr_sd'])}  "
                    f"FNR {_mean_sd(row['fnr_mean'], row['fnr_sd'])}"
                )
        if self.likert:
            lines += ["", "Likert (1 = fake, 5 = real), all ratings pooled, 95% t-based CI:"]
            for truth, ci in self.likert.items():
                if ci.n == 0:
                    lines.append(f"  {truth}: no ratings")
                    continue
                sd = "SD n/a" if math.isnan(ci.sd) else f"{ci.sd:.2f}"
                interval = "CI n/a" if math.isnan(ci.ci_low) else f"CI [{ci.ci_low:.2f}, {ci.ci_high:.2f}]"
                lines.append(f"  {truth}: {ci.mean:.2f} ({sd}), n = {ci.n}, {interval}")
        for name, c in self.correlations.items():
            lines.append(
                f"Pearson {name}: r = {c.r:.2f}, p = {c.p_value:.3f}, n = {c.n} "
                f"({'significant' if c.significant else 'not significant'} at alpha = {c.alpha:.2f})"
            )
        for name, t in self.tests.items():
            kind = "exact" if t.exact else f"Monte Carlo, {t.n_arrangements} resamples"
            lines.append(
                f"Permutation {name} ({'paired' if t.paired else 'unpaired'}, {kind}): difference {t.statistic:.3f}, "
                f"p = {t.p_value:.3f} ({'significant' if t.significant else 'not significant'} at alpha = "
                f"{t.alpha:.2f})"
            )
        return "\n".join(lines)


def _mean_sd(mean: float, sd: float) -> str:
    """'60 (12)' in percent; 'n/a' for an undefined mean and '60 (SD n/a)' for an undefined SD."""
    if pd.isna(mean):
        return "n/a"
    return f"{100 * mean:.0f} ({'SD n/a' if pd.isna(sd) else f'{100 * sd:.0f}'})"


def _clean(value):
    """Recursively turn numpy scalars into Python numbers and NaN into None, for JSON."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def confusion_rates(table: pd.DataFrame) -> pd.Series:
    """Counts and rates of one rater's answers (`table` columns answer, truth); undefined rates are NaN."""
    called_real = table["answer"] == "real"
    is_real = table["truth"] == "real"
    tp = int((called_real & is_real).sum())
    fn = int((~called_real & is_real).sum())
    fp = int((called_real & ~is_real).sum())
    tn = int((~called_real & ~is_real).sum())

    def ratio(num: int, den: int) -> float:
        return num / den if den else math.nan

    return pd.Series(
        {
            "tp": tp,
            "fn": fn,
            "fp": fp,
            "tn": tn,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "accuracy": ratio(tp + tn, tp + fn + fp + tn),
            "fpr": ratio(fp, fp + tn),
            "fnr": ratio(fn, tp + fn),
            "n_images": tp + fn + fp + tn,
        }
    )


def _per_group(responses: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts and rates per group of `keys` (rows in order of first appearance)."""
    by = keys if len(keys) > 1 else keys[0]
    rows = [(name, confusion_rates(group)) for name, group in responses.groupby(by, sort=False)]
    table = pd.DataFrame([row for _, row in rows])
    names = [name for name, _ in rows]
    table.index = pd.MultiIndex.from_tuples(names, names=keys) if len(keys) > 1 else pd.Index(names, name=keys[0])
    return table.astype({c: np.int64 for c in (*COUNTS, "n_images")})


def _correlatable(x: pd.Series, y: pd.Series) -> bool:
    """Pearson's r is defined: at least 3 finite pairs and neither variable constant."""
    pairs = pd.concat([x, y], axis=1).dropna()
    return len(pairs) >= 3 and bool((pairs.nunique() > 1).all())


def analyze(
    responses,
    key=None,
    fids: dict[str, float] | None = None,
    alpha: float = ALPHA_TURING,
    seed: int = 0,
    n_resamples: int = 100_000,
) -> TuringResults:
    """Analyse a Turing test.

    responses: CSV path or DataFrame, or a list of them (see `responses.load_responses`).
    key: the answer key (path or DataFrame), or None when the responses carry a truth column.
    fids: section -> FID of the model shown in that section, for the FID vs mean-FPR correlation (Table 1).
    alpha: significance level (the paper's 0.10 for Turing tests); correlations get a (1 - alpha) interval.
    seed, n_resamples: for Monte Carlo permutation tests (small designs are enumerated exactly).
    """
    table = load_responses(responses, key)
    per_rater = _per_group(table, ["rater"])
    summary = pd.DataFrame({"mean": per_rater.mean(), "sd": per_rater.std(ddof=1), "n": per_rater.count()})

    per_rater_section = _per_group(table, ["rater", "section"])
    grouped = per_rater_section.groupby(level="section", sort=False)
    sections = pd.DataFrame(
        {
            "n_raters": grouped.size(),
            "fpr_mean": grouped["fpr"].mean(),
            "fpr_sd": grouped["fpr"].std(ddof=1),
            "fnr_mean": grouped["fnr"].mean(),
            "fnr_sd": grouped["fnr"].std(ddof=1),
        }
    )
    images_per_section = table.groupby(["section", "truth"]).image.nunique().unstack(fill_value=0)
    images_per_section = images_per_section.reindex(index=sections.index, columns=["real", "generated"], fill_value=0)
    sections["n_real"] = images_per_section["real"]
    sections["n_generated"] = images_per_section["generated"]
    sections = sections.sort_index()

    correlations: dict[str, CorrelationResult] = {}
    if _correlatable(per_rater["fpr"], per_rater["fnr"]):
        correlations["fpr_vs_fnr"] = pearson(per_rater["fpr"], per_rater["fnr"], confidence=1 - alpha, alpha=alpha)
    if fids:
        unknown = sorted(set(fids) - set(sections.index))
        if unknown:
            raise ValueError(f"FIDs given for unknown section(s) {unknown}; the sections are {list(sections.index)}")
        sections["fid"] = pd.Series(fids, dtype=np.float64).reindex(sections.index)
        with_fid = sections.dropna(subset=["fid"])
        if _correlatable(with_fid["fid"], with_fid["fpr_mean"]):
            correlations["fid_vs_fpr"] = pearson(with_fid["fid"], with_fid["fpr_mean"], 1 - alpha, alpha)

    likert: dict[str, MeanCI] = {}
    tests: dict[str, PermutationResult] = {}
    rated = table.dropna(subset=["likert"])
    if len(rated):
        for truth in ("real", "generated"):
            likert[truth] = mean_confidence_interval(rated.loc[rated.truth == truth, "likert"], confidence=0.95)
        means = rated.groupby(["rater", "truth"]).likert.mean().unstack()
        if {"real", "generated"} <= set(means.columns):
            means = means.dropna()
            if len(means) >= 2:
                tests["likert_real_vs_generated"] = permutation_test_means(
                    means["real"], means["generated"], paired=True, n_resamples=n_resamples, seed=seed, alpha=alpha
                )
    return TuringResults(table, per_rater, summary, sections, per_rater_section, likert, correlations, tests, alpha)


def compare_sections(
    results: TuringResults,
    group_a: list[str],
    group_b: list[str],
    rate: str = "fpr",
    alternative: str = "two-sided",
    seed: int = 0,
    n_resamples: int = 100_000,
) -> PermutationResult:
    """Paired permutation test over raters: mean `rate` on sections `group_a` minus that on `group_b`.

    For example, the paper's "augmentation raised the FPR": group_a = the augmented experiments' sections,
    group_b = the others, alternative = "greater", at the results' alpha.
    """
    if rate not in RATES:
        raise ValueError(f"rate must be one of {RATES}, got {rate!r}")
    wide = results.per_rater_section[rate].unstack("section")
    unknown = sorted((set(group_a) | set(group_b)) - set(wide.columns))
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; the sections are {list(wide.columns)}")
    a = wide[list(group_a)].mean(axis=1)
    b = wide[list(group_b)].mean(axis=1)
    return permutation_test_means(
        a, b, paired=True, alternative=alternative, n_resamples=n_resamples, seed=seed, alpha=results.alpha
    )
