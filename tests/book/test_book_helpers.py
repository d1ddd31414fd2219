"""The book's helpers: run-directory reading (against files the trainer's own writers produce), the paper's tables
(against PAPER.md), chapter selection, parameter parsing and admonitions."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from medgan_core.book.build import CHAPTERS, select_chapters, smoke_parameters
from medgan_core.book.display import admonition, int_list
from medgan_core.book.paper import EXPERIMENTS, PAPER_ABLATION, PAPER_PUBLIC, experiment_options
from medgan_core.book.runs import RunDirectory, find_runs
from medgan_core.training.stats import RunLogger, scalar_entry


def paper_table(markdown: str, header_start: str) -> list[list[str]]:
    """Rows of the markdown table in PAPER.md whose header line starts with `header_start`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_ablation_table_matches_paper_md(shared_dir):
    rows = paper_table((shared_dir / "PAPER.md").read_text(), "| experiment | FID |")
    published = {name: tuple(float(x) for x in re.findall(r"[\d.]+", fid)) for name, fid in rows}
    assert len(published) == len(PAPER_ABLATION) == 5
    for name, (mean, sd) in published.items():
        assert PAPER_ABLATION.loc[name, "paper_fid_mean"] == mean
        assert PAPER_ABLATION.loc[name, "paper_fid_sd"] == sd


def test_public_table_matches_paper_md(shared_dir):
    rows = paper_table((shared_dir / "PAPER.md").read_text(), "| dataset | best | mean (SD)")
    assert len(rows) == len(PAPER_PUBLIC) == 4
    for dataset, best, mean_sd, previous in rows:
        assert PAPER_PUBLIC.loc[dataset, "paper_best_fid"] == float(best)
        mean, sd = (float(x) for x in re.findall(r"\d+\.\d+", mean_sd)[:2])
        assert (PAPER_PUBLIC.loc[dataset, "paper_mean_fid"], PAPER_PUBLIC.loc[dataset, "paper_sd_fid"]) == (mean, sd)
        if previous == "none":
            assert pd.isna(PAPER_PUBLIC.loc[dataset, "previous_record"])
        else:
            assert PAPER_PUBLIC.loc[dataset, "previous_record"] == float(previous)


def test_experiments_set_the_paper_switches():
    plain = dict(ada_kimg=None, augpipe=None)
    assert experiment_options(1, None) == dict(resume=None, mirror=False, aug="noaug", **plain)
    assert experiment_options(3, None) == dict(resume=None, mirror=True, aug="ada", **plain)
    assert experiment_options(4, "src.pkl", 10, "bg") == dict(
        resume="src.pkl", mirror=True, aug="ada", ada_kimg=10, augpipe="bg"
    )
    assert experiment_options(2, "src.pkl", 10, "bg") == dict(resume="src.pkl", mirror=False, aug="noaug", **plain)
    with pytest.raises(ValueError, match="transfer"):
        experiment_options(2, None)
    assert [EXPERIMENTS[k]["name"] for k in (1, 2, 3, 4)] == list(PAPER_ABLATION.index[:4])


def test_run_directory_reads_what_the_trainer_writes(tmp_path):
    run = tmp_path / "exp1-seed0"
    run.mkdir()
    (run / "training_options.json").write_text(json.dumps({"batch_size": 8, "cli_options": {"seed": 0}}))
    logger = RunLogger(run, tensorboard=False)
    for tick, (g_loss, g_std) in enumerate([(1.5, 0.2), (1.1, 0.1)]):
        stats = {"Loss/G/loss": dict(num=4, mean=g_loss, std=g_std), "Progress/kimg": scalar_entry(0.1 * (tick + 1))}
        logger.write(stats, 0.1 * (tick + 1))
    logger.close()
    (run / "metric-fid1k_full.jsonl").write_text(
        json.dumps(
            {
                "metric": "fid1k_full",
                "results": {"fid1k_full": 12.5},
                "snapshot_pkl": "network-snapshot-000000.200.safetensors",
            }
        )
        + "\n"
    )
    assert find_runs(tmp_path) == []  # no snapshot yet: not a usable run
    (run / "network-snapshot-000000.200.safetensors").write_bytes(b"")
    (run / "network-snapshot-000000.100.safetensors").write_bytes(b"")
    (found,) = find_runs(tmp_path, "exp*")
    assert found.name == "exp1-seed0" and found.options() == {"seed": 0}
    stats = found.stats()
    assert list(stats.index) == pytest.approx([0.1, 0.2])
    assert list(stats["Loss/G/loss"]) == [1.5, 1.1] and list(stats["Loss/G/loss/std"]) == [0.2, 0.1]
    metrics = found.metrics()
    assert metrics.loc[0, "value"] == 12.5 and metrics.loc[0, "kimg"] == pytest.approx(0.2)
    assert found.latest_snapshot().name == "network-snapshot-000000.200.safetensors"
    assert found.best() is None and found.best_snapshot() == found.latest_snapshot()
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunDirectory.open(tmp_path)


def test_chapter_selection_and_smoke_parameters(tmp_path):
    assert select_chapters(None) == list(CHAPTERS)
    assert select_chapters("3,1") == ["01_data", "03_ablation"]
    assert select_chapters("training,06_clinician_turing_test") == ["02_training", "06_clinician_turing_test"]
    with pytest.raises(ValueError, match="unknown chapter"):
        select_chapters("7")
    params = smoke_parameters(tmp_path)
    assert set(params) == set(CHAPTERS)
    for values in params.values():  # smoke runs never write into the repository
        for value in values.values():
            if isinstance(value, str) and "/" in value:
                assert value.startswith(str(tmp_path.resolve()))


def test_int_list_and_admonition():
    assert int_list([0, 1]) == [0, 1] and int_list(3) == [3]
    assert int_list("[0, 1]") == [0, 1] and int_list("0-2") == [0, 1, 2]
    markup = admonition("Missing: <x>", "a `code` part\n\nsecond <b>", kind="warning", show=False)
    assert markup.startswith('<div class="admonition warning"><p class="admonition-title">Missing: &lt;x&gt;</p>')
    assert "<code>code</code>" in markup and "second &lt;b&gt;" in markup and markup.count("<p>") == 2
    with pytest.raises(ValueError):
        admonition("t", "b", kind="nope", show=False)
