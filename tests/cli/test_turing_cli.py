"""`medgan turing build` and `medgan turing analyze` through the real click entry point."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from medgan_core.cli import main
from medgan_core.turing.paper_tables import PAPER_TABLE2, table2_responses


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    dirs = {name: tmp_path / name for name in ("real", "exp1", "exp2")}
    for name, folder in dirs.items():
        folder.mkdir()
        for i in range(8):
            pixels = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{name}_{i}.png")
    return dirs


def test_build_then_analyze(tmp_path, folders):
    runner = CliRunner()
    out = tmp_path / "test"
    args = [
        "turing",
        "build",
        "--real",
        str(folders["real"]),
        "--generated",
        str(folders["exp1"]),
        "--generated",
        str(folders["exp2"]),
        "--n-real",
        "3",
        "--n-generated",
        "4",
        "--seed",
        "2",
        "--out",
        str(out),
        "--title",
        "Demo",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "turing_test.html" in result.output and "answer_key.csv" in result.output
    key = pd.read_csv(out / "answer_key.csv", dtype=str)
    assert len(key) == 14

    # every rater calls everything real: TP = 6, FP = 8
    responses = pd.DataFrame({"rater": "ann", "image": key.image, "answer": "real", "likert": 4})
    responses.to_csv(tmp_path / "responses.csv", index=False)
    result = runner.invoke(
        main,
        [
            "turing",
            "analyze",
            str(tmp_path / "responses.csv"),
            "--key",
            str(out / "answer_key.csv"),
            "--json",
            "--fid",
            "exp1=7.5",
            "--fid",
            "exp2=5",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (rater,) = report["per_rater"]
    assert (rater["tp"], rater["fn"], rater["fp"], rater["tn"]) == (6, 0, 8, 0)
    assert rater["fpr"] == 1.0 and rater["fnr"] == 0.0
    assert {s["section"]: s["fid"] for s in report["sections"]} == {"exp1": 7.5, "exp2": 5.0}


def test_analyze_text_output_and_figures(tmp_path):
    path = tmp_path / "table2.csv"
    table2_responses().to_csv(path, index=False)
    result = CliRunner().invoke(main, ["turing", "analyze", str(path), "--figures", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert "Pearson fpr_vs_fnr: r = -0.71" in result.output
    first = PAPER_TABLE2.loc[1]  # the paper's clinician 1, printed in percent
    row = next(line for line in result.output.splitlines() if line.startswith("1 "))
    assert f"{first['recall']:.1f}" in row and f"{first['fpr']:.1f}" in row and f"{first['fnr']:.1f}" in row
    assert (tmp_path / "figs" / "rater_rates.png").is_file()


def test_analyze_reports_bad_rows_and_bad_fid(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("rater,image,answer,truth\nann,a,maybe,real\nann,a,real,real\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["turing", "analyze", str(path)])
    assert result.exit_code == 1
    assert "line 2: answer 'maybe' is not real|fake" in result.output
    assert "line 3: duplicate answer" in result.output
    result = CliRunner().invoke(main, ["turing", "analyze", str(path), "--fid", "nonsense"])
    assert result.exit_code == 2 and "SECTION=VALUE" in result.output


def test_build_errors_are_click_errors(tmp_path, folders):
    result = CliRunner().invoke(
        main,
        [
            "turing",
            "build",
            "--real",
            str(folders["real"]),
            "--generated",
            str(folders["exp1"]),
            "--n-real",
            "50",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    assert "needs 50" in result.output
