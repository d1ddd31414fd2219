"""Chapter 2's helpers on run folders written by the trainer's own writers: the collapse figure and the summary
whose words follow the numbers (both ways), the departures from the paper, the paper-scale command, the wrapped
snapshot strip and the "-" for metrics a snapshot did not compute."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medgan_core.book import training
from medgan_core.book.paper import PAPER_TRAINING, training_departures
from medgan_core.evaluation.collapse import COLLAPSE_COVERAGE, COLLAPSE_SPREAD, CollapseReport
from medgan_core.metrics.runner import report_metric
from tests.book.test_chapter_helpers import write_run
from tests.book.test_collapse_words import write_history


def collapse_run(tmp_path, flags):
    run = write_run(tmp_path / "mni-32", [2.0, 1.8, 1.6], metric_values=[9.0, 7.5, 6.0], resolution=32)
    write_history(run.path, flags, kimg_step=1)
    return run


def test_collapse_figure_shades_the_snapshots_in_collapse(tmp_path):
    run = collapse_run(tmp_path, [True, True, False])
    figure = training.collapse_figure(run)
    frd_panel, spread_panel, coverage_panel = figure.axes
    assert frd_panel.get_legend() is not None and spread_panel.get_legend() is not None
    assert len(spread_panel.patches) == 2  # one red band per collapsed snapshot
    assert [t.get_text() for t in coverage_panel.get_legend().get_texts()][-1] == f"collapse below {COLLAPSE_COVERAGE}"
    assert training.metric_trend(run).startswith("frd256")  # div128 is not reported as lower-is-better
    empty = write_run(tmp_path / "no-div", [2.0], resolution=32)
    assert training.collapse_figure(empty) is None


def test_metric_table_writes_a_dash_where_a_metric_is_missing(tmp_path):
    run = write_run(tmp_path / "run", [2.0, 1.8], metric_values=[9.0, 7.5], resolution=32)
    result = {"metric": "div128", "results": {"div128": 0.9}, "total_time": 1.0}
    report_metric(result, run.path, snapshot="network-snapshot-000002.safetensors")  # only at the second one
    table = training.metric_table(run)
    assert list(table["div128"]) == ["-", 0.9] and "nan" not in table.to_string().lower()


@pytest.mark.parametrize(
    "report, phrases, absent",
    [
        (CollapseReport(0.19, 0.01, 0.96, 0.53, 128, 123), ["Mode collapse from kimg 0", "mode collapse: the "
         "generated images vary far less", "describe the collapse"], ["1% expected"]),
        (CollapseReport(0.95, 0.8, 0.55, 0.53, 128, 123), ["out of it from kimg 1", "no mode collapse (",
         "against the 1% expected"], ["describe the collapse"]),
    ],
)  # fmt: skip
def test_summary_follows_the_numbers(tmp_path, report, phrases, absent):
    run = collapse_run(tmp_path, [True, report.collapsed, report.collapsed])
    departures = training_departures(run.options(), "MNI152 slices, 32x32")
    text = training.chapter_summary(run, report, departures, memorised=0.0)
    for phrase in phrases:
        assert phrase in text
    for phrase in absent:
        assert phrase not in text
    assert "cbase (1024 here, 32768 in the paper)" in text and "batch" not in departures.index


def test_departures_list_only_what_differs():
    same = {key: value for key, value in PAPER_TRAINING.items() if key not in ("data", "aug")}
    assert list(training_departures(same, "x").index) == ["data"]
    table = training_departures(dict(same, beta1=0.0, kimg=140.0, aug="ada"), "x")
    assert list(table.index) == ["data", "kimg", "beta1"] and table.loc["kimg", "this_run"] == "140"


def test_paper_scale_command_computes_gamma():
    command = training.paper_scale_command(resolution=512, batch=32)
    assert command.endswith("-p gamma 1.6384") and "<" not in command  # 0.0002 * 512^2 / 32
    assert training.paper_scale_command(resolution=256, batch=64).endswith("-p gamma 0.2048")


def test_progress_figure_wraps_into_rows(tmp_path):
    run = write_run(tmp_path / "run", [2.0], resolution=8)
    for kimg in range(0, 100, 10):  # ten snapshots' grids of 8x4 tiles
        Image.fromarray(np.zeros((32, 64), np.uint8)).save(run.path / f"fakes{kimg:06d}.png")
    figure = training.progress_figure(run, per_row=4)
    titled = [ax for ax in figure.axes if ax.get_title()]
    assert len(figure.axes) == 12 and len(titled) == 10  # 3 rows of 4, two empty panels
    width, height = figure.get_size_inches()
    assert width <= 7 and height > 4


def test_training_metrics_auto_adds_the_collapse_metric(monkeypatch):
    from medgan_core.evaluation import frd

    monkeypatch.setattr(frd, "frd_available", lambda: (False, "not installed"))
    assert training.training_metrics("auto") == "div128"
    assert json.dumps(training.training_metrics("none")) == '"none"'


def test_frd_over_the_varying_features_is_a_curve_beside_frd_scores(tmp_path):
    run = write_run(tmp_path / "run", [2.0, 1.8], resolution=32)
    write_history(run.path, [True, False], kimg_step=1)
    for i, (frd, varying) in enumerate([(16.0, 5.0), (12.0, 3.5)]):
        result = {
            "metric": "frd256",
            "results": {"frd256": frd, "frd256_distance": np.exp(frd), "frd256_varying": varying},
        }
        report_metric(result, run.path, snapshot=f"network-snapshot-{i + 1:06d}.safetensors")
    table = training.metric_table(run)
    assert list(table["frd256"]) == ["-", 16.0, 12.0] and list(table["frd256_varying"]) == ["-", 5.0, 3.5]
    frd_panel = training.collapse_figure(run).axes[0]
    labels = [t.get_text() for t in frd_panel.get_legend().get_texts()]
    assert labels == ["FRD, frd-score v1", "FRD, varying features"] and len(frd_panel.lines) == 2
    assert [list(line.get_ydata()) for line in frd_panel.lines] == [[16.0, 12.0], [5.0, 3.5]]


def test_the_pages_state_the_collapse_thresholds_of_the_code():
    """Chapter 2 and the methods page give the verdict's thresholds in words: the ones collapse.py applies."""
    import re

    from medgan_core.book.build import REPO_ROOT

    pages = [(REPO_ROOT / "book" / "methods.md").read_text(encoding="utf-8"),
             (REPO_ROOT / "notebooks" / "02_training.ipynb").read_text(encoding="utf-8")]  # fmt: skip
    for page in pages:
        stated = re.search(r"spread is below ([\d.]+) or the coverage below ([\d.]+)", " ".join(page.split()))
        assert stated and tuple(map(float, stated.groups())) == (COLLAPSE_SPREAD, COLLAPSE_COVERAGE)
