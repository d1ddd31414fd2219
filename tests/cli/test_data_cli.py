"""`medgan prep` and `medgan dataset` through the click group."""

import zipfile

import pytest
from click.testing import CliRunner

from medgan_core.cli import main
from medgan_core.data import phantoms


@pytest.fixture(autouse=True)
def _naming_key_in_tmp(tmp_path, monkeypatch):
    """`medgan prep` would create a naming key in ~/.config: point $XDG_CONFIG_HOME at a temporary folder."""
    monkeypatch.delenv("MEDGAN_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_prep_mni_brain_reports_the_count_and_the_match(tmp_path):
    result = CliRunner().invoke(main, ["prep", "mni-brain", "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "123 slices" in result.output and "matches" in result.output and "66 dropped" in result.output
    result = CliRunner().invoke(
        main, ["dataset", "--source", str(tmp_path / "out"), "--dest", str(tmp_path / "d.zip"), "--resolution", "256"]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        assert len(archive.namelist()) == 124  # 123 images + dataset.json


def test_prep_exits_non_zero_and_lists_failures(tmp_path):
    truth = phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    (tmp_path / "src" / "liver-orig002.raw").write_bytes(b"\0" * 10)
    args = [
        "prep",
        "sliver07",
        "--src",
        str(tmp_path / "src"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "1 source(s) failed" in result.output and "liver-orig002" not in result.output
    assert "naming key" in result.output and str(tmp_path / "config") in result.output  # created, and said where
    result = CliRunner().invoke(main, args + ["--show-paths"])
    assert result.exit_code == 1
    assert "1 source(s) failed" in result.output and "liver-orig002.mhd" in result.output
    nz = next(iter(truth.values())).shape[0]
    assert f"{nz} slices from 2 sources" in result.output and "does NOT match" in result.output


def test_prep_limit_and_unknown_recipe(tmp_path):
    phantoms.write_sliver07_phantom(tmp_path / "src", cases=2)
    args = ["prep", "sliver07", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--limit", "1"]
    result = CliRunner().invoke(main, args + ["--no-progress"])
    assert result.exit_code == 0 and "from 1 sources" in result.output
    result = CliRunner().invoke(main, ["prep", "nonsense", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "known recipes" in result.output and "liver-ct" in result.output
    assert "MEDGAN_MANIFESTS" in result.output


def test_dataset_names_the_offending_file(tmp_path):
    import numpy as np

    from medgan_core.utils.io import save_png

    save_png(np.zeros((8, 8), np.uint8), tmp_path / "png" / "a.png")
    save_png(np.zeros((8, 6), np.uint8), tmp_path / "png" / "b.png")
    result = CliRunner().invoke(
        main, ["dataset", "--source", str(tmp_path / "png"), "--dest", str(tmp_path / "d.zip")]
    )
    assert result.exit_code != 0 and "b.png" in result.output and "not square" in result.output
