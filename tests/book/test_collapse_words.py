"""The book's words on mode collapse come from the numbers: a run's div128 history (where it left the collapse)
and a generator's verdict box, tested both ways on small fixtures."""

from __future__ import annotations

import json

import pytest

from medgan_core.book.collapse import collapse_box, collapse_exit, collapse_sentence, collapse_table
from medgan_core.evaluation.collapse import CollapseReport


def write_history(run_dir, collapsed_flags, kimg_step=10):
    """metric-div128.jsonl as the trainer writes it: one line per snapshot, kimg 0, 10, 20, ..."""
    lines = []
    for index, flag in enumerate(collapsed_flags):
        results = dict(div128=0.2 if flag else 0.9, div128_coverage=0.05 if flag else 0.7, div128_msssim=0.9,
                       div128_msssim_real=0.5, div128_collapse=float(flag))  # fmt: skip
        snapshot = f"network-snapshot-{index * kimg_step:06d}.safetensors"
        lines.append(json.dumps(dict(results=results, metric="div128", snapshot_pkl=snapshot)))
    (run_dir / "metric-div128.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def test_a_run_that_left_the_collapse(tmp_path):
    run = write_history(tmp_path, [False, True, True, False, True, False, False])
    table = collapse_table(run)
    assert list(table["kimg"]) == [0, 10, 20, 30, 40, 50, 60]
    assert collapse_exit(table) == 50  # the way out is after the last collapsed snapshot, not the first
    sentence = collapse_sentence(run)
    assert "at 3 of 7 snapshots (kimg 10 to 40); out of it from kimg 50 to the end" in sentence
    assert "spread is 0.90" in sentence and "reach 70% as many distinct real images" in sentence


def test_a_run_still_in_collapse(tmp_path):
    run = write_history(tmp_path, [False, True, False, True])
    assert collapse_exit(collapse_table(run)) is None
    assert collapse_sentence(run).startswith("Mode collapse from kimg 10 to the end of the run")


def test_a_run_never_in_collapse_and_one_without_the_metric(tmp_path):
    run = write_history(tmp_path, [False, False])
    assert collapse_exit(collapse_table(run)) == 0
    assert collapse_sentence(run).startswith("No snapshot was in mode collapse")
    empty = tmp_path / "other"
    empty.mkdir()
    assert collapse_table(empty).empty and "not computed" in collapse_sentence(empty)


@pytest.mark.parametrize(
    "spread, coverage, msssim, title, kind",
    [
        (0.19, 0.01, 0.96, "Mode collapse", "warning"),
        (0.95, 0.80, 0.55, "No mode collapse", "note"),
        (0.22, 0.00, 0.03, "Varied, but unlike the real images", "caution"),
    ],
)
def test_the_box_follows_the_numbers(spread, coverage, msssim, title, kind):
    report = CollapseReport(spread, coverage, msssim, 0.53, 128, 123)
    html = collapse_box(report, "The generator", "FRD and the Turing test", show=False)
    assert f'class="admonition {kind}"' in html and f">{title}</p>" in html
    assert f"{spread:.2f} times" in html and f"{coverage:.0%}" in html
    assert ("FRD and the Turing test" in html) == (kind != "note")


def test_a_varied_run_unlike_the_reals_is_not_called_learned(tmp_path):
    run = write_history(tmp_path, [False])
    lines = (run / "metric-div128.jsonl").read_text().replace('"div128_coverage": 0.7', '"div128_coverage": 0.0')
    (run / "metric-div128.jsonl").write_text(lines.replace('"div128_msssim": 0.9', '"div128_msssim": 0.1'))
    sentence = collapse_sentence(run)
    assert sentence.startswith("No snapshot was in mode collapse") and "not yet like the real ones" in sentence
