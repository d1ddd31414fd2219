"""The chapters' parameter cells state the settings their records were trained with (what `run_training=True`
would retrain): compared with the `medgan train` options each recorded run wrote to training_options.json."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from medgan_core.book.paper import EXPERIMENTS
from medgan_core.book.training import TRAIN_OPTION_NAMES

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("batch", "gamma", "kimg", "tick", "snap", "cbase", "cmax", "map_layers", "beta1", "fp32")


def chapter_parameters(chapter: str) -> dict:
    """The values the chapter's cell tagged 'parameters' assigns (plain literals, run as the notebook would)."""
    notebook = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    values: dict = {}
    exec(cell.source, {}, values)  # the repository's own notebook: assignments of literals only
    return values


def recorded_options(run: Path) -> dict:
    path = run / "training_options.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: regenerate it with the command in {run.parent}/README.md")
    return json.loads(path.read_text(encoding="utf-8"))["cli_options"]


def assert_same(params: dict, options: dict, names, where: str) -> None:
    for name in names:
        recorded = options[TRAIN_OPTION_NAMES.get(name, name)]
        assert params[name] == recorded, f"{where}: the chapter says {name} = {params[name]!r}, recorded {recorded!r}"


def test_chapter_2_parameters_are_its_records_settings():
    params = chapter_parameters("02_training")
    options = recorded_options(ROOT / params["record"])
    assert_same(params, options, (*SHARED, "seed", "aug", "mirror", "augpipe", "target", "ada_kimg", "resume"),
                "chapter 2")  # fmt: skip
    assert "div128" in options["metrics"].split(",")  # the collapse metric at every snapshot
    assert Path(options["data"]).name.endswith(f"-{params['resolution']}.zip")


def test_chapter_3_parameters_are_its_records_settings():
    params = chapter_parameters("03_ablation")
    record = ROOT / params["record"]
    for experiment in params["experiments"]:
        for seed in params["seeds"]:
            options = recorded_options(record / f"exp{experiment}-seed{seed}")
            where = f"chapter 3, exp{experiment}-seed{seed}"
            assert_same(params, options, SHARED, where)
            augment = EXPERIMENTS[experiment]["augment"]
            assert options["seed"] == seed and options["mirror"] == augment, where
            assert options["aug"] == ("ada" if augment else "noaug"), where
            assert options["ada_kimg"] == (params["ada_kimg"] if augment else None), where
            assert not augment or options["augpipe"] == params["augpipe"], where
            assert (options["resume"] is not None) == EXPERIMENTS[experiment]["transfer"], where
    source = recorded_options(record / "transfer-source")
    assert source["kimg"] == params["source_kimg"], "chapter 3: the transfer source's length"
