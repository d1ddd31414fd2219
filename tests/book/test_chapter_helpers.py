"""What the chapters compute, on run folders written by the trainer's own writers: the parameters table, the
ablation's scores and tests, the records, and the training chapter's tables."""

from __future__ import annotations

import itertools
import json

import nbformat
import numpy as np
import pandas as pd
import pytest

from medgan_core.book import ablation, records, training
from medgan_core.book.build import REPO_ROOT, check_parameters
from medgan_core.book.display import Parameters, parameter_names, show_parameters
from medgan_core.book.paper import EXPERIMENTS, PAPER_ABLATION
from medgan_core.book.runs import RunDirectory
from medgan_core.metrics.runner import report_metric
from medgan_core.training.stats import RunLogger, scalar_entry


def write_run(folder, g_losses, metric_values=(), metric="frd256", resolution=32):
    """A run folder as the trainer writes it: options, stats.jsonl (RunLogger) and metric lines (report_metric)."""
    folder.mkdir(parents=True)
    options = {
        "cli_options": {"cbase": 1024, "cmax": 64, "batch": 8, "metrics": metric},
        "G_kwargs": {"img_resolution": resolution},
    }  # fmt: skip (the trainer's layout, NVIDIA's keys)
    (folder / "training_options.json").write_text(json.dumps(options))
    logger = RunLogger(folder, tensorboard=False)
    for tick, loss in enumerate(g_losses):
        kimg = 0.5 * (tick + 1)
        stats = {
            "Loss/G/loss": dict(num=4, mean=loss, std=0.1),
            "Progress/kimg": scalar_entry(kimg),
            "Timing/total_sec": scalar_entry(60.0 * (tick + 1)),
            "Timing/sec_per_kimg": scalar_entry(120.0),
        }
        logger.write(stats, kimg)  # fmt: skip
    logger.close()
    for i, value in enumerate(metric_values):
        result = {"metric": metric, "results": {metric: value}, "total_time": 1.0}
        report_metric(result, folder, snapshot=f"network-snapshot-{i + 1:06d}.safetensors")
    return RunDirectory.open(folder)


def test_parameter_names_come_from_the_parameters_cells_only():
    cells = [
        "import os",
        "# Parameters\na = 1\nb, c = 2, 'x'  # two at once\nd: int = 4",
        "# Parameters\na = 5\ne = 6",
    ]
    assert parameter_names(cells) == ["a", "b", "c", "d", "e"]
    namespace = {"In": cells, "a": 5, "b": 2, "c": "x", "d": 4, "e": 6, "os": object()}
    table = show_parameters(namespace)
    assert isinstance(table, Parameters) and dict(table) == {"a": 5, "b": 2, "c": "x", "d": 4, "e": 6}
    assert repr(table).splitlines() == ["a = 5", "b = 2", "c = 'x'", "d = 4", "e = 6"]
    assert "<th style='text-align:left'>c</th><td><code>&#x27;x&#x27;</code>" in table._repr_html_()
    with pytest.raises(RuntimeError, match="# Parameters"):
        show_parameters({"In": ["x = 1"]})


@pytest.mark.parametrize("chapter", sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("*.ipynb")))
def test_notebooks_are_thin_and_their_smoke_parameters_exist(chapter):
    from medgan_core.book.build import smoke_parameters

    path = REPO_ROOT / "notebooks" / f"{chapter}.ipynb"
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    tagged = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].source.lower().startswith("# parameters")
    assert not any("def " in source for source in code)
    assert max(len(source.splitlines()) for source in code) <= 15
    assert sum(len(source.splitlines()) for source in code) < 90
    check_parameters(path, smoke_parameters("/tmp/w")[chapter])
    with pytest.raises(ValueError, match="unknown parameter"):
        check_parameters(path, {"no_such_parameter": 1})


def test_ablation_scores_tables_and_tests(tmp_path):
    frd = {(1, 0): 5.0, (1, 1): 5.4, (1, 2): 5.2, (2, 0): 4.1, (2, 1): 4.3, (2, 2): 4.0, (3, 0): 5.1, (3, 1): 5.3}
    runs = {}
    for (k, s), value in frd.items():
        name = f"exp{k}-seed{s}"
        runs[name] = write_run(tmp_path / name, [1.0 + k, 0.5 + k], metric_values=[value + 1.0, value])
    assert ablation.experiment_of("exp3-seed12") == 3
    with pytest.raises(ValueError):
        ablation.experiment_of("transfer-source")
    scores = ablation.per_run_scores(runs)
    assert scores.loc["exp2-seed1", "FRD"] == 4.3  # the best (lowest) of the run's two evaluations
    assert scores["FID (1k)"].isna().all() and scores["FRD, varying features"].isna().all()
    assert scores["div128 coverage, final"].isna().all()
    table = ablation.ablation_table(scores)
    assert "ours: FRD, varying features mean (SD)" not in table  # no run recorded it
    base = [frd[(1, s)] for s in range(3)]
    assert table.loc["1 baseline", "ours: FRD mean (SD)"] == f"{np.mean(base):.2f} ({np.std(base, ddof=1):.2f})"
    assert table.loc["4 pretrained + augmented", "ours: FRD mean (SD)"] == "not run"
    assert list(table["our runs"][:4]) == [3, 3, 2, 0]
    assert table.loc["2 pretrained", "paper FID mean (SD)"] == "7.62 (0.35)"
    tests = ablation.permutation_tests(scores)
    # independent check: exact two-sided permutation p of the difference in means, by enumeration
    transfer = [frd[(2, s)] for s in range(3)]
    pooled, observed = base + transfer, abs(np.mean(transfer) - np.mean(base))
    diffs = [abs(np.mean([pooled[i] for i in idx]) - np.mean([pooled[i] for i in range(6) if i not in idx]))
             for idx in itertools.combinations(range(6), 3)]  # fmt: skip
    expected_p = np.mean([d >= observed - 1e-12 for d in diffs])
    row = tests.loc["2 pretrained vs 1 baseline"]
    assert row["p value"] == pytest.approx(round(expected_p, 3)) and row["arrangements"] == 20
    assert row["difference in mean FRD"] == pytest.approx(round(np.mean(transfer) - np.mean(base), 3))
    curves = ablation.loss_curves(runs)
    assert len(curves) == 2 * len(runs) and set(curves.experiment) == {EXPERIMENTS[k]["name"] for k in (1, 2, 3)}
    assert "permutation p" in ablation.augmentation_test(curves)


def test_records_collect_readme_and_note(tmp_path):
    run = write_run(tmp_path / "runs" / "exp1-seed0", [2.0, 1.5], metric_values=[3.0])
    for name in (
        "reals.png",
        "fakes_init.png",
        "fakes000500.png",
        "fakes001000.png",
        "network-snapshot-1.safetensors",
    ):
        (run.path / name).write_bytes(b"png")
    record = tmp_path / "record"
    records.collect(run.path, record / "exp1-seed0", all_grids=False)
    kept = sorted(p.name for p in (record / "exp1-seed0").iterdir())
    assert kept == ["fakes001000.png", "fakes_init.png", "metric-frd256.jsonl", "reals.png", "stats.jsonl",
                    "training_options.json"]  # fmt: skip
    records.write_readme(record, "bash book/records/make_records.sh ablation", "a" * 40, 1, 754.0, "short\nruns")
    readme = (record / "README.md").read_text()
    assert "- wall time: 12.6 min" in readme and "- threads: 1" in readme and "short\nruns" in readme
    note = records.record_note(record / "exp1-seed0", show=False)
    assert "make_records.sh ablation" in note and "aaaaaaaaaaaa" in note and "13 min" in note
    assert "short runs" in note  # the README's note, on one line
    with pytest.raises(FileNotFoundError, match="no network-snapshot"):
        records.final_snapshot(record / "exp1-seed0")


def test_training_chapter_reads_a_run(tmp_path):
    run = write_run(tmp_path / "mni-64", [2.0, 1.8, 1.6], metric_values=[9.0, 7.5, 6.0], resolution=64)
    summary = training.run_summary(run)
    assert summary.loc["resolution", "mni-64"] == 64 and summary.loc["kimg trained", "mni-64"] == 1.5
    assert summary.loc["wall time (min)", "mni-64"] == 3.0
    table = training.metric_table(run)
    assert list(table["frd256"]) == [9.0, 7.5, 6.0] and list(table.index) == [1.0, 2.0, 3.0]
    assert training.metric_figure(run) is not None and training.loss_figure(run) is not None
    assert run.final_metric("frd256") == 6.0 and np.isnan(run.final_metric("fid1k_full"))
    params = {"record": str(tmp_path / "mni-64"), "run_training": False}
    assert training.chapter_run(params).path == run.path
    with pytest.raises(FileNotFoundError, match="make_records.sh training"):
        training.chapter_run(dict(params, record=str(tmp_path / "missing")))
    assert training.training_metrics("none") == "none"
    assert isinstance(PAPER_ABLATION, pd.DataFrame)


def test_metric_trend_names_first_best_and_last(tmp_path):
    run = write_run(tmp_path / "mni-64", [2.0, 1.8, 1.6], metric_values=[9.0, 5.0, 6.0], resolution=64)
    assert training.metric_trend(run) == (
        "frd256: 9.00 at 1 kimg, lowest 5.00 at 2 kimg, 6.00 at the last snapshot (3 kimg)"
    )


def test_ablation_scores_carry_the_varying_frd_and_the_final_collapse_metric(tmp_path):
    from tests.book.test_collapse_words import write_history

    runs = {}
    for seed, (varying, flags) in enumerate([(3.0, [True, False]), (4.0, [True, True])]):
        name = f"exp3-seed{seed}"
        run = write_run(tmp_path / name, [1.0, 0.9])
        for i, value in enumerate([varying + 1.0, varying]):
            result = {"metric": "frd64", "results": {"frd64": 9.0, "frd64_varying": value}, "total_time": 1.0}
            report_metric(result, run.path, snapshot=f"network-snapshot-{i + 1:06d}.safetensors")
        write_history(run.path, flags)  # div128 spread 0.2 in collapse, 0.9 out of it; coverage 0.05 / 0.7
        runs[name] = run
    scores = ablation.per_run_scores(runs)
    assert list(scores["FRD, varying features"]) == [3.0, 4.0]  # each run's lowest
    assert list(scores["div128 spread, final"]) == [0.9, 0.2] and list(scores["div128 coverage, final"]) == [0.7, 0.05]
    table = ablation.ablation_table(scores)
    row = table.loc["3 augmented"]
    assert row["ours: FRD, varying features mean (SD)"] == f"3.50 ({np.std([3.0, 4.0], ddof=1):.2f})"
    assert row["ours: div128 coverage, final mean (SD)"] == f"0.38 ({np.std([0.7, 0.05], ddof=1):.2f})"
