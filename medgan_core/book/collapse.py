"""Mode collapse over a run, read from its `metric-div128.jsonl` (the trainer's `div128` at every snapshot).

`collapse_table(run_dir)`: one row per snapshot (kimg, spread, coverage, MS-SSIM of generated and real images,
collapsed: this version's verdict on the recorded numbers). `collapse_exit(table)`: the kimg of the first
snapshot from which every later one is out of collapse (None while the last one is in it).
`collapse_sentence(run_dir)`: both in words, for a record's README and a chapter's prose, so that the text
follows the numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from medgan_core.evaluation.collapse import COLLAPSE_COVERAGE, COLLAPSE_SPREAD, CollapseReport

DIVERSITY_METRIC = "div128"
_SNAPSHOT_KIMG = re.compile(r"network-snapshot-(\d+(?:\.\d+)?)")
COLUMNS = ["kimg", "spread", "coverage", "msssim", "msssim_real", "collapsed"]


def collapse_table(run_dir: str | Path, metric: str = DIVERSITY_METRIC) -> pd.DataFrame:
    """The collapse metric at every snapshot of a run, sorted by kimg (empty when the run never computed it)."""
    path = Path(run_dir) / f"metric-{metric}.jsonl"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        if not line.strip():
            continue
        entry = json.loads(line)
        results = entry["results"]
        report = CollapseReport(
            spread_ratio=results[metric],
            coverage=results[f"{metric}_coverage"],
            msssim=results[f"{metric}_msssim"],
            msssim_real=results[f"{metric}_msssim_real"],
            num_generated=0,
            num_real=0,
        )
        match = _SNAPSHOT_KIMG.search(entry.get("snapshot_pkl") or "")
        rows.append(
            dict(
                kimg=float(match.group(1)) if match else float("nan"),
                spread=report.spread_ratio,
                coverage=report.coverage,
                msssim=report.msssim,
                msssim_real=report.msssim_real,
                collapsed=report.collapsed,  # this version's verdict on the recorded numbers
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("kimg", ignore_index=True)


def collapse_exit(table: pd.DataFrame) -> float | None:
    """kimg of the first snapshot after the last collapsed one (the run's way out), or None when the last snapshot
    is collapsed or the table is empty; the first snapshot's kimg when none was collapsed."""
    if table.empty or bool(table["collapsed"].iloc[-1]):
        return None
    collapsed = table.index[table["collapsed"]]
    return float(table["kimg"].iloc[0 if len(collapsed) == 0 else collapsed[-1] + 1])


def collapse_sentence(run_dir: str | Path, metric: str = DIVERSITY_METRIC) -> str:
    """Where the run was in collapse and where it left it, in one or two sentences from its metric file."""
    table = collapse_table(run_dir, metric)
    if table.empty:
        return f"The collapse metric ({metric}) was not computed for this run."
    last = table.iloc[-1]
    final = (
        f"At the last snapshot (kimg {last.kimg:g}) the generated images' spread is {last.spread:.2f} of the reals' "
        f"and they reach {last.coverage:.0%} as many distinct real images as random reals would (MS-SSIM "
        f"{last.msssim:.3f} against {last.msssim_real:.3f} among reals)."
    )
    if not last.collapsed and (last.coverage < COLLAPSE_COVERAGE or last.spread < COLLAPSE_SPREAD):
        final += " Its images are varied but not yet like the real ones (nearest to few of them)."
    exit_kimg = collapse_exit(table)
    in_collapse = table.loc[table["collapsed"], "kimg"]
    if exit_kimg is None:
        first = in_collapse.iloc[0]
        return f"Mode collapse from kimg {first:g} to the end of the run ({metric}). {final}"
    if len(in_collapse) == 0:
        return f"No snapshot was in mode collapse ({metric}). {final}"
    return (
        f"Mode collapse at {len(in_collapse)} of {len(table)} snapshots (kimg {in_collapse.iloc[0]:g} to "
        f"{in_collapse.iloc[-1]:g}); out of it from kimg {exit_kimg:g} to the end ({metric}). {final}"
    )


def collapse_box(report, subject: str, consequences: str, show: bool = True) -> str:
    """The chapter's word on a generator, decided by its numbers (a `medgan_core.evaluation.collapse`
    CollapseReport): a warning naming mode collapse and what it means for `consequences` when the report says
    collapse, a caution when the images are varied but unlike the reals, else a note with the same numbers.
    `subject` names the generator ("Chapter 2's generator")."""
    from medgan_core.book.display import admonition

    numbers = (
        f"Its generated images spread {report.spread_ratio:.2f} times as far as the real ones (on 8x8-pooled "
        f"images), reach {report.coverage:.0%} as many distinct real images as the same number of random real "
        f"images would (mode coverage: each generated image counts for the real image nearest to it), and have a "
        f"mean pairwise MS-SSIM of {report.msssim:.3f} against {report.msssim_real:.3f} among the reals."
    )
    if report.collapsed:
        body = (
            f"{subject} is in mode collapse: it draws the same image, or a few, for every latent. {numbers}\n\n"
            f"Every number below that uses it ({consequences}) describes a generator that has not learned the "
            "variety of the data, not StyleGAN2-ADA on this data."
        )
        return admonition("Mode collapse", body, kind="warning", show=show)
    if report.state == "unlike the reals":
        body = (
            f"{subject} draws varied images, but few of them stand near a real image: it has not learned the "
            f"data yet. {numbers}\n\nRead {consequences} with that in mind."
        )
        return admonition("Varied, but unlike the real images", body, kind="caution", show=show)
    return admonition("No mode collapse", f"{subject} draws varied images. {numbers}", kind="note", show=show)
