"""`medgan turing build` and `medgan turing analyze` through the real click entry point."""

from __future__ import annotations

import json
import re

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


def build_args(folders, out, seed: int, *extra: str) -> list[str]:
    return [
        "turing",
        "build",
        "--real",
        str(folders["real"]),
        "--generated",
        str(folders["exp1"]),
        "--n-real",
        "3",
        "--n-generated",
        "3",
        "--seed",
        str(seed),
        "--out",
        str(out),
        *extra,
    ]


def test_analyze_help_defines_the_rates():
    result = CliRunner().invoke(main, ["turing", "analyze", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert '"Real" is the positive class' in text
    assert "FPR (false positive rate) = FP / (FP + TN): share of generated images called real" in text
    assert "FNR (false negative rate) = FN / (TP + FN): share of real images called fake" in text


def test_answers_of_another_test_and_non_utf8_files_are_named(tmp_path, folders):
    runner = CliRunner()
    for name, seed in (("a", 1), ("b", 2)):
        assert runner.invoke(main, build_args(folders, tmp_path / name, seed)).exit_code == 0
    key_a = pd.read_csv(tmp_path / "a" / "answer_key.csv", dtype=str)
    export = pd.DataFrame(
        {
            "rater": "ann",
            "image": key_a.image,
            "answer": "real",
            "likert": "",
            "section": key_a.section_number,
            "test_id": key_a.test_id,
        }
    )
    export.to_csv(tmp_path / "ann.csv", index=False)
    result = runner.invoke(
        main, ["turing", "analyze", str(tmp_path / "ann.csv"), "--key", str(tmp_path / "a" / "answer_key.csv")]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["turing", "analyze", str(tmp_path / "ann.csv"), "--key", str(tmp_path / "b" / "answer_key.csv")]
    )
    assert result.exit_code == 1
    assert "1 problem(s)" in result.output and "belong to another test" in result.output
    assert key_a.test_id[0] in result.output and "unknown image id" not in result.output

    (tmp_path / "latin1.csv").write_bytes(b"rater,image,answer,truth\nJos\xe9,a,real,real\n")
    result = runner.invoke(main, ["turing", "analyze", str(tmp_path / "latin1.csv")])
    assert result.exit_code == 1 and "latin1.csv" in result.output and "not UTF-8" in result.output


def test_analyze_text_never_prints_nan_for_an_undefined_precision(tmp_path):
    rows = ["rater,image,answer,truth"]
    for rater, answers in (("ann", "real real fake real"), ("bob", "fake fake fake fake")):
        for image, (answer, truth) in enumerate(zip(answers.split(), ["real", "real", "generated", "generated"])):
            rows.append(f"{rater},i{image},{answer},{truth}")
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["turing", "analyze", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.lower()
    assert "precision 67 (SD n/a) [1 of 2]" in result.output  # ann: TP 2, FP 1
    assert "undefined for 'bob'" in result.output


def test_build_reports_skipped_near_empty_images_and_shuffles_on_request(tmp_path, folders):
    for i in range(4):
        pixels = np.zeros((8, 8), np.uint8)
        pixels[0, i] = 255  # one bright pixel of 64: 1.6% foreground
        Image.fromarray(pixels, mode="L").save(folders["real"] / f"top_{i}.png")
    result = CliRunner().invoke(main, build_args(folders, tmp_path / "o", 0, "--n-real", "8", "--shuffle-per-rater"))
    assert result.exit_code == 0, result.output
    assert re.search(r"skipped [1-4] near-empty real image\(s\) \(foreground under 5% of the frame", result.output)
    key = pd.read_csv(tmp_path / "o" / "answer_key.csv", dtype=str)
    assert not key.source.str.contains("top_").any()
    assert '"order":"shuffled"' in (tmp_path / "o" / "turing_test.html").read_text(encoding="utf-8")
    result = CliRunner().invoke(
        main, build_args(folders, tmp_path / "p", 0, "--n-real", "12", "--min-foreground", "0")
    )
    assert result.exit_code == 0 and "near-empty" not in result.output
