"""The experiment table: the paper's four experiments under the names the ablation chapter reads, tables of your own
in YAML or CSV, and every bad table refused before anything is submitted, naming the file or run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from medgan_core.book.demo import run_name
from medgan_core.cli import main
from medgan_core.grid.table import TableError, load_table, make_runs, paper_table

# PAPER.md, Training: 1 baseline, 2 pretrained (FFHQ transfer), 3 augmented (x-flips + ADA), 4 both
PAPER_SWITCHES = {1: (False, False), 2: (True, False), 3: (False, True), 4: (True, True)}


def _value(args: tuple[str, ...], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_paper_grid_has_the_chapter_names_and_the_papers_switches(tmp_path):
    runs = make_runs(paper_table([1, 2, 3, 4], "ffhq-512.pkl"), [0, 1, 2], tmp_path, "liver.zip", ["--kimg", "2"])
    assert [run.name for run in runs] == [run_name(k, s) for k in (1, 2, 3, 4) for s in (0, 1, 2)]
    for run in runs:
        k = int(run.experiment[3:])
        transfer, augment = PAPER_SWITCHES[k]
        args = run.train_args
        assert _value(args, "--resume") == ("ffhq-512.pkl" if transfer else None), run.name
        assert ("--mirror" in args) == augment and _value(args, "--aug") == ("ada" if augment else "noaug")
        assert _value(args, "--seed") == str(run.seed) and _value(args, "--kimg") == "2"
        assert _value(args, "--run-dir") == str(tmp_path / run.name) == run.run_dir
        assert args[-1] == "--auto-resume"


def test_transfer_experiments_need_a_source():
    with pytest.raises(TableError, match="--transfer-source"):
        paper_table([1, 2])
    assert [e.name for e in paper_table([1, 3])] == ["exp1", "exp3"]


def test_yaml_and_csv_tables_give_the_same_runs(tmp_path):
    yaml_table = tmp_path / "grid.yaml"
    yaml_table.write_text(
        "experiments:\n  - name: base\n    options: {aug: noaug, mirror: false}\n"
        "  - name: flips\n    options: --mirror --aug ada\n"
    )
    csv_table = tmp_path / "grid.csv"
    csv_table.write_text("name,options\nbase,--aug noaug\nflips,--mirror --aug ada\n")
    mapping = tmp_path / "mapping.yml"
    mapping.write_text("base: {aug: noaug}\nflips: [--mirror, --aug, ada]\n")
    tables = [load_table(path) for path in (yaml_table, csv_table, mapping)]
    assert tables[0] == tables[1] == tables[2]
    runs = make_runs(tables[0], [4], tmp_path / "runs", "d.zip")
    assert [run.name for run in runs] == ["base-seed4", "flips-seed4"]
    assert runs[1].train_args[-4:] == ("--mirror", "--aug", "ada", "--auto-resume")


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,options\nbase,--seed 3\n", "--seed is set by the grid launcher"),
        ("name,options\nbase,--run-dir x\n", "--run-dir is set by the grid launcher"),
        ("name,options\nbase,\nbase,--mirror\n", "used twice"),
        ("name,options\na/b,\n", "a folder name"),
        ("options\n--mirror\n", "needs the columns name,options"),
        ("name,options\nbase,--no-such-option 1\n", "run base-seed0: medgan train refuses its options"),
        ("name,options\nbase,--kimg lots\n", "run base-seed0: medgan train refuses its options"),
    ],
)
def test_bad_tables_are_refused_naming_the_file_or_run(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=message) as info:
        make_runs(load_table(path), [0], tmp_path / "runs", "d.zip")
    assert "bad.csv" in str(info.value) or "run base-seed0" in str(info.value)


def test_submit_dry_run_lists_each_run_and_submits_nothing(tmp_path):
    table = tmp_path / "grid.csv"
    table.write_text("name,options\nbase,--aug noaug\nflips,--mirror\n")
    root = tmp_path / "runs"
    args = ["grid", "submit", str(root), "--table", str(table), "--data", "d.zip", "--seeds", "0-1", "--dry-run"]
    result = CliRunner().invoke(main, [*args, "--executor", "slurm", "--", "--kimg", "3"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("base-", "flips-"))]
    assert [line.split(":")[0] for line in lines] == ["base-seed0", "base-seed1", "flips-seed0", "flips-seed1"]
    assert all("--kimg 3" in line and line.endswith("--auto-resume") for line in lines)
    assert json.loads(result.output[result.output.index("{") :])["executor"] == "slurm"
    assert not root.exists()
    bad = CliRunner().invoke(main, [*args[:-1], "--", "--seed", "1"])
    assert bad.exit_code == 1 and "--seed is set by the grid launcher" in bad.output
